"""Every patch of moto internals the tests need, in one place.

Written against moto 5.2.5 (the version in requirements/dev.lock). Each patch names the
moto gap it covers; when an upgrade fixes one, delete it here and nothing else changes.
Only tests import this module; the production ASL and code stay as AWS wants them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import botocore.session
from botocore import xform_name

_ECS_MODEL = botocore.session.get_session().get_service_model("ecs")
_ECS_OPERATIONS = {xform_name(name): _ECS_MODEL.operation_model(name) for name in _ECS_MODEL.operation_names}


def _ecs_operation(service: Any, action: str | None) -> Any:
    return _ECS_OPERATIONS[xform_name(action or service.resource.api_action)]


def _normalise_ecs_parameters(
    self: Any,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    self._to_boto_request(parameters, _ecs_operation(self, service_action_name).input_shape)


def _normalise_ecs_response(
    self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    self._from_boto_response(response, _ecs_operation(self, service_action_name).output_shape)


def _send_task_failure_with_cause(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


@contextmanager
def moto_fixes() -> Iterator[None]:
    """Two moto 5.2 gaps, patched for the duration of a test; the production ASL stays as AWS wants it.

    * ECS casing (moto issue 10076): the ECS integration leaves ``_normalise_parameters`` and
      ``_normalise_response`` as no-ops, so ``run_task(Cluster=...)`` fails with KeyError
      'Cluster' and the response lacks ``Tasks``. moto's own shape-driven helpers
      (``_to_boto_request`` / ``_from_boto_response``) do the conversion Step Functions does.
    * ``SendTaskFailure`` drops ``cause`` in moto's response handler, so a Catch would see
      ``"Cause": null`` where AWS passes the worker's cause on.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )
    from moto.stepfunctions.responses import StepFunctionResponse

    with (
        mock.patch.object(StateTaskServiceEcs, "_normalise_parameters", _normalise_ecs_parameters),
        mock.patch.object(StateTaskServiceEcs, "_normalise_response", _normalise_ecs_response),
        mock.patch.object(StepFunctionResponse, "send_task_failure", _send_task_failure_with_cause),
    ):
        yield


@contextmanager
def cloudwatch_refuses_metrics(message: str) -> Iterator[None]:
    """Injected fault: every PutMetricData fails with CloudWatch's InvalidParameterValue."""
    from moto.cloudwatch.exceptions import InvalidParameterValue
    from moto.cloudwatch.models import CloudWatchBackend

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise InvalidParameterValue(message)

    with mock.patch.object(CloudWatchBackend, "put_metric_data", refuse):
        yield
