"""Answers in the shapes the customer app expects (the data API's own field names), built
from the client's models."""

from __future__ import annotations

from backend.models import HoldingsAnswer, SessionAnswer
from services.kryptos.models import Holdings, SessionStatus


def holdings_answer(h: Holdings) -> HoldingsAnswer:
    """`GET /v1/holdings` as the data API documents it, rebuilt from the client's model."""
    rows = []
    for row in h.holdings:
        a = row.asset
        rows.append({
            "asset": {"tokenId": a.token_id, "symbol": a.symbol, "publicName": a.public_name,
                      "chainId": a.chain_id, "logoUrl": a.logo_url, "type": a.type,
                      "category": a.category},
            "totalQuantity": row.total_quantity, "costbasis": row.cost_basis,
            "marketPrice": row.market_price, "marketValue": row.market_value,
            "unrealizedPnL": row.unrealized_pnl, "roi": row.roi,
            "baseCurrency": row.base_currency, "24hrChange": row.change_24h,
            "hasCalculatedBalance": row.has_calculated_balance,
            "assetDistribution": [
                {"quantity": d.quantity,
                 "account": {"provider": d.provider, "walletId": d.wallet_id},
                 "allocationPercentage": d.allocation_percentage,
                 "isCalculatedBalance": d.is_calculated_balance}
                for d in row.distribution],
        })
    s = h.summary
    return HoldingsAnswer.model_validate({
        "holdings": rows,
        "summary": {"totalValue": s.total_value, "totalCostBasis": s.total_cost_basis,
                    "totalUnrealizedPnL": s.total_unrealized_pnl,
                    "roiPercentage": s.roi_percentage, "total24hrChange": s.total_24h_change},
        "user_id": h.user_id,
        "timestamp": int(h.timestamp.timestamp() * 1000) if h.timestamp else None,
    })


def session_answer(s: SessionStatus) -> SessionAnswer:
    """The check-session answer's `data` (the route leaves empty fields out)."""
    return SessionAnswer(has_valid_session=s.has_valid_session, reason=s.reason,
                         user_id=s.user_id, workspace_id=s.workspace_id,
                         workspace_name=s.workspace_name, granted_scopes=s.granted_scopes,
                         grant_id=s.grant_id)
