"""compare(exchange) -> Comparison: status and body, byte for byte or by digest."""

from __future__ import annotations

from shadowdiff.compare.model import MATCH, MISMATCH, SHADOW_ERROR, Comparison, Difference, Exchange
from shadowdiff.forward import Body


def compare(exchange: Exchange) -> Comparison:
    """Compare the shadow's answer with the primary's (the primary must have answered)."""
    primary, shadow = exchange.primary, exchange.shadow
    if not shadow.ok:
        return Comparison(exchange, SHADOW_ERROR)
    differences: list[Difference] = []
    if primary.status != shadow.status:
        differences.append(Difference("status", "status", "changed", primary.status, shadow.status))
    differences.extend(_body_differences(primary.body, shadow.body))
    return Comparison(exchange, MISMATCH if differences else MATCH, tuple(differences))


def _body_differences(primary: Body | None, shadow: Body | None) -> list[Difference]:
    if primary is None or shadow is None:
        return []
    if primary.size != shadow.size:
        return [Difference("body", "$", "changed", f"{primary.size} bytes", f"{shadow.size} bytes")]
    if primary.data is not None and shadow.data is not None:
        if primary.data == shadow.data:
            return []
        return [Difference("body", "$", "changed", _excerpt(primary.data), _excerpt(shadow.data))]
    if primary.digest != shadow.digest:
        return [Difference("body", "$", "changed", f"sha256:{primary.digest}", f"sha256:{shadow.digest}")]
    return []


def _excerpt(data: bytes, limit: int = 120) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return text + ("..." if len(data) > limit else "")
