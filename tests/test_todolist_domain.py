"""The TodoList rules, written with the given/when/then fixtures of evento.testing (no server needed)."""

from __future__ import annotations

import pytest

from evento import AggregateDeletedError, AggregateInitializedError, AggregateNotInitializedError
from evento.demo.todolist.aggregate import TodoListAggregate, TodoListRuleError
from evento.demo.todolist.payloads import (
    ErpUserActivityRegisterCommand,
    ErpUserActivityRegisteredEvent,
    TodoListAddTodoCommand,
    TodoListCheckTodoCommand,
    TodoListCreateCommand,
    TodoListCreatedEvent,
    TodoListDeleteCommand,
    TodoListDeletedEvent,
    TodoListRemoveTodoCommand,
    TodoListTodoAddedEvent,
    TodoListTodoCheckedEvent,
    TodoListTodoRemovedEvent,
)
from evento.demo.todolist.saga import ErpRegistrationState, ErpTodoListActivityRegistrationSaga
from evento.testing import AggregateFixture, SagaFixture

CREATED = TodoListCreatedEvent(identifier="L", content="groceries")


def added(todo: str) -> TodoListTodoAddedEvent:
    return TodoListTodoAddedEvent(identifier="L", todo_identifier=todo, content=f"do {todo}")


@pytest.fixture
def todo_list() -> AggregateFixture:
    return AggregateFixture(TodoListAggregate)


def test_a_list_is_created_once_with_a_name(todo_list: AggregateFixture) -> None:
    todo_list.given().when(TodoListCreateCommand(identifier="L", name="groceries")).expect_event(CREATED)
    todo_list.given().when(TodoListCreateCommand(identifier="L", name="  ")).expect_error(TodoListRuleError, "name")
    todo_list.given(CREATED).when(TodoListCreateCommand(identifier="L", name="again")).expect_error(
        AggregateInitializedError
    )


def test_commands_on_a_missing_list_fail(todo_list: AggregateFixture) -> None:
    todo_list.given().when(TodoListDeleteCommand(identifier="L")).expect_error(AggregateNotInitializedError)


def test_a_list_holds_at_most_five_todos(todo_list: AggregateFixture) -> None:
    full = [added(f"T{n}") for n in range(5)]
    result = todo_list.given(CREATED, *full).when(
        TodoListAddTodoCommand(identifier="L", todo_identifier="T6", content="one too many")
    )
    result.expect_error(TodoListRuleError, "at most 5")
    result = todo_list.given(CREATED, *full[:4]).when(
        TodoListAddTodoCommand(identifier="L", todo_identifier="T5", content="fifth")
    )
    assert result.expect_event(TodoListTodoAddedEvent(identifier="L", todo_identifier="T5", content="fifth"))
    assert len(result.state.todos) == 5


def test_a_todo_is_added_once_with_content(todo_list: AggregateFixture) -> None:
    todo_list.given(CREATED, added("T1")).when(
        TodoListAddTodoCommand(identifier="L", todo_identifier="T1", content="again")
    ).expect_error(TodoListRuleError, "already in the list")
    todo_list.given(CREATED).when(
        TodoListAddTodoCommand(identifier="L", todo_identifier="T1", content=" ")
    ).expect_error(TodoListRuleError, "content")


def test_checking_tells_whether_every_todo_is_checked(todo_list: AggregateFixture) -> None:
    checked_t1 = TodoListTodoCheckedEvent(identifier="L", todo_identifier="T1", all_checked=False)
    todo_list.given(CREATED, added("T1"), added("T2")).when(
        TodoListCheckTodoCommand(identifier="L", todo_identifier="T1")
    ).expect_event(checked_t1)
    result = todo_list.given(CREATED, added("T1"), added("T2"), checked_t1).when(
        TodoListCheckTodoCommand(identifier="L", todo_identifier="T2")
    )
    result.expect_event(TodoListTodoCheckedEvent(identifier="L", todo_identifier="T2", all_checked=True))
    assert result.state.todos == {"T1": True, "T2": True}
    todo_list.given(CREATED, added("T1"), checked_t1).when(
        TodoListCheckTodoCommand(identifier="L", todo_identifier="T1")
    ).expect_error(TodoListRuleError, "already checked")
    todo_list.given(CREATED).when(TodoListCheckTodoCommand(identifier="L", todo_identifier="T9")).expect_error(
        TodoListRuleError, "not in the list"
    )


def test_a_checked_todo_cannot_be_removed_nor_its_list_deleted(todo_list: AggregateFixture) -> None:
    checked = TodoListTodoCheckedEvent(identifier="L", todo_identifier="T1", all_checked=True)
    todo_list.given(CREATED, added("T1"), checked).when(
        TodoListRemoveTodoCommand(identifier="L", todo_identifier="T1")
    ).expect_error(TodoListRuleError, "checked")
    todo_list.given(CREATED, added("T1"), checked).when(TodoListDeleteCommand(identifier="L")).expect_error(
        TodoListRuleError, "checked todo"
    )
    todo_list.given(CREATED, added("T1")).when(
        TodoListRemoveTodoCommand(identifier="L", todo_identifier="T1")
    ).expect_event(TodoListTodoRemovedEvent(identifier="L", todo_identifier="T1"))


def test_removing_the_last_unchecked_todo_completes_the_list(todo_list: AggregateFixture) -> None:
    """Only a removal that leaves checked todos, and at least one, completes the list, as the final check would."""
    checked_t1 = TodoListTodoCheckedEvent(identifier="L", todo_identifier="T1", all_checked=False)
    todo_list.given(CREATED, added("T1"), added("T2"), checked_t1).when(
        TodoListRemoveTodoCommand(identifier="L", todo_identifier="T2")
    ).expect_event(TodoListTodoRemovedEvent(identifier="L", todo_identifier="T2", all_checked=True))
    todo_list.given(CREATED, added("T1"), added("T2"), added("T3"), checked_t1).when(
        TodoListRemoveTodoCommand(identifier="L", todo_identifier="T2")
    ).expect_event(TodoListTodoRemovedEvent(identifier="L", todo_identifier="T2", all_checked=False))
    todo_list.given(CREATED, added("T1")).when(
        TodoListRemoveTodoCommand(identifier="L", todo_identifier="T1")
    ).expect_event(TodoListTodoRemovedEvent(identifier="L", todo_identifier="T1", all_checked=False))


def test_a_removal_racing_the_final_check_completes_the_list_once(todo_list: AggregateFixture) -> None:
    """The aggregate takes the two commands one after the other: whichever runs second is refused, and the first
    is the one event that completes the list."""
    checked_t1 = TodoListTodoCheckedEvent(identifier="L", todo_identifier="T1", all_checked=False)
    story = (CREATED, added("T1"), added("T2"), checked_t1)
    removed = TodoListTodoRemovedEvent(identifier="L", todo_identifier="T2", all_checked=True)
    checked = TodoListTodoCheckedEvent(identifier="L", todo_identifier="T2", all_checked=True)
    todo_list.given(*story, removed).when(TodoListCheckTodoCommand(identifier="L", todo_identifier="T2")).expect_error(
        TodoListRuleError, "not in the list"
    )
    todo_list.given(*story, checked).when(TodoListRemoveTodoCommand(identifier="L", todo_identifier="T2")).expect_error(
        TodoListRuleError, "checked"
    )


def test_deleting_a_list_deletes_the_aggregate(todo_list: AggregateFixture) -> None:
    todo_list.given(CREATED, added("T1")).when(TodoListDeleteCommand(identifier="L")).expect_event(
        TodoListDeletedEvent(identifier="L")
    ).expect_deleted()
    todo_list.given(CREATED, TodoListDeletedEvent(identifier="L")).when(
        TodoListAddTodoCommand(identifier="L", todo_identifier="T", content="x")
    ).expect_error(AggregateDeletedError)


def test_the_fixture_reports_a_failed_expectation() -> None:
    fixture = AggregateFixture(TodoListAggregate)
    with pytest.raises(AssertionError, match="expected event"):
        fixture.given().when(TodoListCreateCommand(identifier="L", name="a")).expect_event(
            TodoListCreatedEvent(identifier="L", content="b")
        )
    with pytest.raises(AssertionError, match="expected TodoListRuleError"):
        fixture.given().when(TodoListCreateCommand(identifier="L", name="a")).expect_error(TodoListRuleError)


# --- the ERP registration saga ------------------------------------------------------------------------------------


def test_the_saga_starts_on_creation_and_counts_contributions() -> None:
    saga = SagaFixture(ErpTodoListActivityRegistrationSaga)
    result = saga.given(CREATED, metadata={"user": "ann"}).when(added("T1"), metadata={"user": "bob"})
    result.expect_no_commands()
    assert isinstance(result.state, ErpRegistrationState)
    assert result.state.usages == {"bob": 1}


def test_the_saga_registers_the_list_with_the_erp_once_all_is_checked_then_ends() -> None:
    saga = SagaFixture(ErpTodoListActivityRegistrationSaga)
    saga.given(CREATED, added("T1"), metadata={"user": "ann"})
    result = saga.when(
        TodoListTodoCheckedEvent(identifier="L", todo_identifier="T1", all_checked=True), metadata={"user": "bob"}
    )
    result.expect_commands(
        ErpUserActivityRegisterCommand(
            resource_type="TodoList", resource_identifier="L", contributions={"ann": 1, "bob": 1}
        )
    )
    assert result.state is not None
    assert result.state.associations["resource_identifier"] == "L"

    saga.given(
        CREATED,
        added("T1"),
        TodoListTodoCheckedEvent(identifier="L", todo_identifier="T1", all_checked=True),
        metadata={"user": "ann"},
    )
    done = saga.when(
        ErpUserActivityRegisteredEvent(resource_type="TodoList", resource_identifier="L", contributions={})
    )
    done.expect_ended()


def test_the_saga_registers_the_list_when_a_removal_completes_it() -> None:
    saga = SagaFixture(ErpTodoListActivityRegistrationSaga)
    saga.given(CREATED, added("T1"), added("T2"), metadata={"user": "ann"})
    result = saga.when(
        TodoListTodoRemovedEvent(identifier="L", todo_identifier="T2", all_checked=True), metadata={"user": "bob"}
    )
    result.expect_commands(
        ErpUserActivityRegisterCommand(
            resource_type="TodoList", resource_identifier="L", contributions={"ann": 2, "bob": 1}
        )
    )
    incomplete = saga.when(TodoListTodoRemovedEvent(identifier="L", todo_identifier="T2"), metadata={"user": "bob"})
    incomplete.expect_no_commands()


def test_the_saga_ignores_events_of_lists_it_does_not_follow() -> None:
    SagaFixture(ErpTodoListActivityRegistrationSaga).given().when(added("T1")).expect_ignored()
