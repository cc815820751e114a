-- Meters beyond tokens (server-tool requests, the tier, region and speed the upstream reported)
-- and the upstream's list cost of each request (its price before the plan's discount), so the
-- operator's reports can show revenue, upstream cost and margin. Records settled before this
-- migration have no list cost (NULL): it was never computed for them.
ALTER TABLE usage_records
    ADD COLUMN web_search_requests bigint NOT NULL DEFAULT 0 CHECK (web_search_requests >= 0),
    ADD COLUMN web_fetch_requests  bigint NOT NULL DEFAULT 0 CHECK (web_fetch_requests >= 0),
    ADD COLUMN service_tier        text NOT NULL DEFAULT '',
    ADD COLUMN inference_geo       text NOT NULL DEFAULT '',
    ADD COLUMN speed               text NOT NULL DEFAULT '',
    ADD COLUMN list_cost           bigint CHECK (list_cost >= 0);
