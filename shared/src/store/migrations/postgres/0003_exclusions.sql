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
