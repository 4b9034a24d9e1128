"""The flight example: flights with labelled seats, customers paying for them, and bookings decided by a saga
with the seat hold as a distributed lock (hold → charge → confirm, the hold expiring if the charge is late),
built to the published contract (``shared/contracts/order-inventory-and-flight.md``, part C).

Services as in the contract's topology: ``edge`` (HTTP), ``bookings`` (booking aggregate, saga, booking views and
statistics), ``flights`` (flight aggregate: seats and holds, the seat map, hold expiry), ``payments`` (customer
aggregate, balances and notifications).
"""
