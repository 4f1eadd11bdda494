"""Service layer of the Kryptos Connect console. Nothing in here imports Streamlit."""
