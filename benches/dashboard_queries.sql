-- The dashboard query set of the comparison harness (benches/compare.py).
-- Each query follows a `-- name:` line; Gyrus (DataFusion) and DuckDB run the
-- same text over the same Parquet files. The large dataset ends 2026-10-31.

-- name: by_platform
SELECT platform, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions,
       sum(spend) / nullif(sum(conversions), 0) AS cpa,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance GROUP BY platform ORDER BY spend DESC;

-- name: by_channel
SELECT channel, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions,
       sum(spend) / nullif(sum(conversions), 0) AS cpa,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance GROUP BY channel ORDER BY spend DESC;

-- name: top_campaigns
SELECT platform, campaign_id, campaign_name, sum(spend) AS spend, sum(clicks) AS clicks,
       sum(conversions) AS conversions, sum(spend) / nullif(sum(conversions), 0) AS cpa,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance GROUP BY platform, campaign_id, campaign_name ORDER BY spend DESC LIMIT 50;

-- name: by_day
SELECT date, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions
FROM ad_performance GROUP BY date ORDER BY date;

-- name: platform_day_last_90d
SELECT date, platform, sum(spend) AS spend, sum(conversions) AS conversions,
       sum(spend) / nullif(sum(conversions), 0) AS cpa
FROM ad_performance WHERE date >= DATE '2026-08-03'
GROUP BY date, platform ORDER BY date, platform;

-- name: account_month
SELECT platform, account_id, sum(spend) AS spend, sum(conversions) AS conversions,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance WHERE date BETWEEN DATE '2026-06-01' AND DATE '2026-06-30'
GROUP BY platform, account_id ORDER BY platform, account_id;

-- name: top_movers
WITH recent AS (
  SELECT campaign_id,
         sum(CASE WHEN date >= DATE '2026-10-25' THEN conversions ELSE 0 END) AS this_week,
         sum(CASE WHEN date < DATE '2026-10-25' THEN conversions ELSE 0 END) AS last_week
  FROM ad_performance WHERE date >= DATE '2026-10-18'
  GROUP BY campaign_id
)
SELECT campaign_id, this_week, last_week, this_week - last_week AS change
FROM recent ORDER BY abs(this_week - last_week) DESC, campaign_id LIMIT 20;

-- name: rolling_7d
WITH daily AS (
  SELECT campaign_id, date, sum(spend) AS spend, sum(conversions) AS conversions
  FROM ad_performance GROUP BY campaign_id, date
)
SELECT campaign_id, date,
       sum(spend) OVER (PARTITION BY campaign_id ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS spend_7d,
       sum(conversions) OVER (PARTITION BY campaign_id ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS conversions_7d
FROM daily ORDER BY campaign_id, date;
