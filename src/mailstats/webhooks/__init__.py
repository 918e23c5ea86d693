"""Push: events sent to the account's endpoints, signed as Standard Webhooks.

`network` decides which URLs and addresses may be reached and makes the requests,
`signing` makes the headers, `dispatcher` drains the outbox the derive step fills.
"""
