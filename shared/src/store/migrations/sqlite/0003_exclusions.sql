-- Customers a campaign left out at assignment (suppressed, frequency cap, no
-- approved message, duplicate), with the reason: every customer accounted for.
CREATE TABLE exclusions (
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (campaign_id, customer_id)
);
CREATE INDEX contacts_campaign ON contacts (campaign_id);

-- The audience as segmentation read it: with the exclusions above, every
-- customer of the campaign is accounted for in the store.
CREATE TABLE audiences (
    campaign_id TEXT PRIMARY KEY,
    customers_total BIGINT NOT NULL,
    batches BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
