"""The DCDN API client: one method per endpoint, typed results, typed errors.

INTERFACE CONTRACT (other packages code against exactly these signatures):

    client = DcdnClient(token="...", budget_key="user:42", on_unauthorized=callable_or_None)

    # catalog (the same for every user; see panel/dcdn/catalog.py for the shared cache)
    client.list_plans() -> list[Plan]
    client.list_images() -> list[Image]
    client.list_regions() -> list[Region]
    client.list_templates() -> list[Template]

    # instances
    client.list_instances() -> list[Instance]
    client.get_instance(instance_id) -> Instance
    client.create_instance(*, name, plan, image, region, cpu_type="shared",
                           ssh_keys=(), redundant=False) -> CreatedInstance
        # never retried; if the request may have left and no answer came: OutcomeUnknown
    client.start_instance(instance_id) -> Instance
    client.stop_instance(instance_id) -> Instance
    client.restart_instance(instance_id) -> Instance
    client.reset_password(instance_id) -> str            # the new root password
    client.add_ssh_key(instance_id, public_key) -> None
    client.destroy_instance(instance_id) -> DestroyResult

    # earnings
    client.earnings_summary() -> EarningsSummary
    client.node_earnings(node_id) -> NodeEarnings
    client.request_payout(*, amount: Decimal, wallet_address: str,
                          idempotency_key: str | None = None) -> Payout
        # never retried; OutcomeUnknown when the outcome cannot be known
    client.token_info() -> TokenInfo

Every method raises a ``panel.dcdn.errors.DcdnError`` subclass on failure.
"""
