"""The order-inventory example: products with stock, customers with balances, and orders decided by a saga
(reserve stock → charge → confirm, releasing the reservation when the charge fails), built to the published
contract (``shared/contracts/order-inventory-and-flight.md``, part B).

Services as in the contract's topology: ``edge`` (HTTP), ``orders`` (order aggregate, saga, order views and
statistics), ``inventory`` (product aggregate and view), ``customers`` (customer aggregate, balances and
notifications).
"""
