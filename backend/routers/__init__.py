"""The HTTP routes, one router per area: `customer` (the Web SDK's endpoints), `webhooks`
(the signed receiver), `health` (/healthz, /readyz) and `demo` (the sandbox's demo app)."""
