"""HA rule actions (PVE 9.x, ``placement.publishHaRules``): create, update, delete a rule
provisiond owns — synchronous API calls, no task to wait for.

Each action first reads every rule afresh (``ClusterReader.ha_rules``: one request) and decides
on that read, not on the plan's observation, so a retry or a second leader is harmless:
- create: the rule exists and is ours with the wanted value → *adopted*; ours but different →
  updated instead (digest-guarded); not ours (its comment lacks the marker) → refused;
- update: gone → replanned (the next cycle creates it); not ours → refused; already equal →
  *adopted*; else ``PUT`` with the digest of that read (a concurrent change → requeued);
- delete: gone → *adopted*; not ours → refused; else ``DELETE``.
Ownership is ``core.planning.harules_publish.owned``: the id prefix *and* the comment marker.
After a write the adapter invalidates the cached rules, so the next cycle sees it.
"""

from __future__ import annotations

from provisiond.core.actions import HaRuleCreate, HaRuleDelete, HaRuleUpdate
from provisiond.core.errors import PermanentError
from provisiond.core.hacluster import HaRule
from provisiond.core.planning.harules_publish import owned
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal, ReplanSignal


async def _current(rule_id: str, ctx: ActionContext) -> HaRule | None:
    rules = await ctx.call("ha_rules", ctx.reader.ha_rules)
    return next((r for r in rules if r.rule == rule_id), None)


def _check_ours(rule: HaRule, fleet: str, what: str) -> None:
    if not owned(rule, fleet):
        raise PermanentError(
            f"refusing to {what} HA rule '{rule.rule}': not provisiond's "
            f"(comment {rule.comment[:60]!r} lacks the fleet {fleet} marker)"
        )


async def create(a: HaRuleCreate, ctx: ActionContext) -> None:
    now = await _current(a.rule.rule, ctx)
    if now is None:
        await ctx.call(f"create HA rule {a.rule.rule}", lambda: ctx.writer.ha_rule_create(a.rule))
        return
    await _update(a.rule, a.fleet, now, ctx)


async def update(a: HaRuleUpdate, ctx: ActionContext) -> None:
    now = await _current(a.rule.rule, ctx)
    if now is None:
        raise ReplanSignal(f"HA rule '{a.rule.rule}' is gone: the next cycle creates it")
    await _update(a.rule, a.fleet, now, ctx)


async def _update(want: HaRule, fleet: str, now: HaRule, ctx: ActionContext) -> None:
    _check_ours(now, fleet, "update")
    if now == want:
        raise AdoptedSignal(f"HA rule '{want.rule}' already as wanted")
    await ctx.call(
        f"update HA rule {want.rule}",
        lambda: ctx.writer.ha_rule_update(want, digest=now.digest),
    )


async def delete(a: HaRuleDelete, ctx: ActionContext) -> None:
    now = await _current(a.rule.rule, ctx)
    if now is None:
        raise AdoptedSignal(f"HA rule '{a.rule.rule}' already gone")
    _check_ours(now, a.fleet, "delete")
    await ctx.call(f"delete HA rule {now.rule}", lambda: ctx.writer.ha_rule_delete(now.rule))
