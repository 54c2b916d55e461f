-- The dashboard query set of the Flight SQL comparison (benches/dashboard_flight.py).
-- Each query follows a `-- name:` line. {lo} and {hi} are the bounds of a date
-- window drawn at random for every repetition, {mid} a day inside it and
-- {campaign} a campaign drawn at random, so no repetition can be answered
-- from memory of an earlier one. Gyrus (over Flight SQL) and DuckDB (in
-- process, over the same Parquet files) run the same text.

-- name: by_platform
SELECT platform, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions,
       sum(spend) / nullif(sum(conversions), 0) AS cpa,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY platform ORDER BY spend DESC;

-- name: by_channel
SELECT channel, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions,
       sum(spend) / nullif(sum(conversions), 0) AS cpa,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY channel ORDER BY spend DESC;

-- name: top_campaigns
SELECT platform, campaign_id, campaign_name, sum(spend) AS spend, sum(clicks) AS clicks,
       sum(conversions) AS conversions, sum(spend) / nullif(sum(conversions), 0) AS cpa,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY platform, campaign_id, campaign_name ORDER BY spend DESC, campaign_id LIMIT 50;

-- name: by_day
SELECT date, sum(spend) AS spend, sum(clicks) AS clicks, sum(conversions) AS conversions
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY date ORDER BY date;

-- name: platform_day
SELECT date, platform, sum(spend) AS spend, sum(conversions) AS conversions,
       sum(spend) / nullif(sum(conversions), 0) AS cpa
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY date, platform ORDER BY date, platform;

-- name: account_rollup
SELECT platform, account_id, campaign_id, sum(spend) AS spend, sum(conversions) AS conversions,
       sum(conversion_value) / nullif(sum(spend), 0) AS roas
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY platform, account_id, campaign_id ORDER BY platform, account_id, campaign_id;

-- name: weekly_cpa_by_platform
SELECT date_trunc('week', date) AS week, platform, sum(spend) AS spend,
       sum(spend) / nullif(sum(conversions), 0) AS cpa
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY 1, 2 ORDER BY 1, 2;

-- name: active_campaigns_per_day
SELECT date, count(DISTINCT campaign_id) AS active_campaigns
FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY date ORDER BY date;

-- name: top_movers
WITH recent AS (
  SELECT campaign_id,
         sum(CASE WHEN date >= DATE '{mid}' THEN conversions ELSE 0 END) AS this_period,
         sum(CASE WHEN date < DATE '{mid}' THEN conversions ELSE 0 END) AS last_period
  FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
  GROUP BY campaign_id
)
SELECT campaign_id, this_period, last_period, this_period - last_period AS change
FROM recent ORDER BY abs(this_period - last_period) DESC, campaign_id LIMIT 20;

-- name: rolling_7d
WITH daily AS (
  SELECT campaign_id, date, sum(spend) AS spend, sum(conversions) AS conversions
  FROM ad_performance WHERE date BETWEEN DATE '{lo}' AND DATE '{hi}'
  GROUP BY campaign_id, date
)
SELECT campaign_id, date,
       sum(spend) OVER (PARTITION BY campaign_id ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS spend_7d,
       sum(conversions) OVER (PARTITION BY campaign_id ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS conversions_7d
FROM daily ORDER BY campaign_id, date;

-- name: campaign_series
SELECT date, sum(impressions) AS impressions, sum(clicks) AS clicks, sum(spend) AS spend,
       sum(conversions) AS conversions, sum(conversion_value) AS conversion_value
FROM ad_performance WHERE campaign_id = '{campaign}' AND date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY date ORDER BY date;
