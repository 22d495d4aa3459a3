-- Customers with a new statement: notified once per statement.
select
    user_id,
    account_id
from {{ ref('accounts') }}
where statement_ready
