-- 002: PruneDeliveries forgets old deliveries by age.
CREATE INDEX deliveries_received ON deliveries (received_at);
