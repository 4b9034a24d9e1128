"""A bundle published by the tests: greetings as an aggregate."""
