-- Lookups of one entity below the rollups' grain (benches/dashboard_flight.py
-- --queries benches/lookup_window.sql): one ad group's or one ad's rows over
-- a random date window, read from the table itself. {ad_group} and {ad} are
-- drawn at random for every repetition, like {lo} and {hi}.

-- name: ad_group_series
SELECT date, sum(impressions) AS impressions, sum(clicks) AS clicks, sum(spend) AS spend,
       sum(conversions) AS conversions
FROM ad_performance WHERE ad_group_id = '{ad_group}' AND date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY date ORDER BY date;

-- name: ad_group_ads
SELECT ad_id, sum(clicks) AS clicks, sum(spend) AS spend, sum(conversions) AS conversions
FROM ad_performance WHERE ad_group_id = '{ad_group}' AND date BETWEEN DATE '{lo}' AND DATE '{hi}'
GROUP BY ad_id ORDER BY spend DESC, ad_id;

-- name: ad_series
SELECT date, impressions, clicks, spend, conversions, conversion_value
FROM ad_performance WHERE ad_id = '{ad}' AND date BETWEEN DATE '{lo}' AND DATE '{hi}'
ORDER BY date, platform, account_id, campaign_id, ad_group_id;
