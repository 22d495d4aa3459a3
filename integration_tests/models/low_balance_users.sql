-- Customers whose balance fell under the threshold: one notification per
-- customer per day (the dedupe key is the user id and notify_date).
select
    user_id,
    account_id,
    balance,
    current_date as notify_date
from {{ ref('accounts') }}
where balance < {{ var('low_balance_threshold', 100) }}
