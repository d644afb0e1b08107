"""LiteLLM's management API on the store: keys (``keys``), users (``users``), teams (``teams``),
organizations (``organizations``), customers (``customers``), budgets (``budgets``), tags (``tags``),
models stored in the database (``models``), spend reports (``spend``, ``spend_views``) and activity aggregates
(``activity``).

:func:`register` adds every route to the gateway's route table; ``common`` holds what each route shares
(caller and role, bodies, errors, answers) for the modules that add more (organizations, customers, budgets,
models).
"""

from __future__ import annotations

from relaygate.http.routes import RouteTable
from relaygate.management.common import Gateway


def register(t: RouteTable, gw: Gateway) -> None:
    """Add the management routes to ``t``; each answers 503 while ``gw`` has no store."""
    from relaygate.management import (
        access_groups,
        activity,
        budgets,
        capture_rate,
        cloudzero,
        cost_estimate,
        cost_settings,
        credentials,
        customers,
        daily_activity,
        daily_aggregated,
        db_config,
        error_activity,
        fallbacks,
        keys,
        keys_bulk,
        mail_events,
        model_metrics,
        models,
        organizations,
        spend,
        spend_scoped,
        spend_views,
        tag_analytics,
        tags,
        team_callbacks,
        team_join,
        team_permissions,
        teams,
        ui_filters,
        users,
        v1,
    )

    keys.add_routes(t, gw)
    keys_bulk.add_routes(t, gw)  # /v2/key/info, /key/aliases, /key/bulk_update
    users.add_routes(t, gw)
    mail_events.add_routes(t, gw)  # /email/event_settings: which email notifications are sent
    ui_filters.add_routes(t, gw)  # /user/filter/ui, /team/filter/ui: the admin UI's search boxes
    teams.add_routes(t, gw)
    team_callbacks.add_routes(t, gw)  # /team/{team_id}/callback, /team/{team_id}/disable_logging
    team_permissions.add_routes(t, gw)  # /team/permissions_list, /team/permissions_update
    team_join.add_routes(t, gw)  # /team/available (and member_add's self-join)
    organizations.add_routes(t, gw)
    customers.add_routes(t, gw)
    budgets.add_routes(t, gw)
    models.add_routes(t, gw)
    access_groups.add_routes(t, gw)  # /access_group/* on the stored models
    spend.add_routes(t, gw)
    spend_scoped.add_routes(t, gw)  # /{key,user,team,organization}/spend/report
    activity.add_routes(t, gw)  # /global/activity/* (the admin UI's overview)
    spend_views.add_routes(t, gw)  # /global/spend/{tags,provider,teams,end_users ...}, /spend/calculate, paged logs
    capture_rate.add_routes(t, gw)  # /spend/capture_rate: the spend priced against OpenAI's bill
    cloudzero.add_routes(t, gw)  # /cloudzero/*: the export of spend to CloudZero's AnyCost API
    cost_estimate.add_routes(t, gw)  # /cost/estimate
    cost_settings.add_routes(t, gw)  # PATCH /config/cost_discount_config ... (the GETs: gateway.config_view)
    db_config.add_routes(t, gw)  # /config/list, /config/field/*, /config/update: general_settings stored
    fallbacks.add_routes(t, gw)  # POST /fallback, GET and DELETE /fallback/{model}
    credentials.add_routes(t, gw)  # /credentials: stored provider credentials for stored models
    tag_analytics.add_routes(t, gw)  # /tag/distinct, /tag/dau|wau|mau, /tag/summary, per-user analytics
    error_activity.add_routes(t, gw)  # GET /gateway/errors/activity
    model_metrics.add_routes(t, gw)  # /model/metrics[/slow_responses|/exceptions], /model/streaming_metrics
    daily_activity.add_routes(t, gw)  # /{user,team,tag,organization,customer}/daily/activity
    daily_aggregated.add_routes(t, gw)  # .../daily/activity/aggregated[/keys|search|model_top_keys], /export
    v1.add_routes(t, gw)  # /management/v1/...: lists with links, bulk writes, problem+json errors
    tags.add_routes(t, gw)
    from relaygate.management import provider_budgets, router_settings  # need no store

    provider_budgets.add_routes(t, gw)  # /provider/budgets
    router_settings.add_routes(t, gw)  # /router/settings, /router/fields


__all__ = ["register"]
