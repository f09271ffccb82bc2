# Offline tests: the AWS provider is mocked, so nothing here talks to AWS.
# Run from infra/terraform: terraform init -backend=false && terraform test

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "ap-southeast-3" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:ap-southeast-3:123456789012:task-definition/ccapi-monitor-test:7" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:ap-southeast-3:123456789012:ccapi-monitor-test-topic" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/ccapi-monitor-test" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:ap-southeast-3:123456789012:log-group:ccapi-monitor-test" }
  }
  mock_resource "aws_sfn_state_machine" {
    defaults = { arn = "arn:aws:states:ap-southeast-3:123456789012:stateMachine:ccapi-monitor-test" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:ap-southeast-3:123456789012:ccapi-monitor-test-dlq" }
  }
}

# Distinct ARNs where two resources share a type, so a policy naming only one of them fails.
override_resource {
  target = aws_sns_topic.failure
  values = { arn = "arn:aws:sns:ap-southeast-3:123456789012:ccapi-monitor-test-failure" }
}

override_resource {
  target = aws_iam_role.task_execution
  values = { arn = "arn:aws:iam::123456789012:role/ccapi-monitor-test-task-execution" }
}

variables {
  environment        = "test"
  ecs_cluster_arn    = "arn:aws:ecs:ap-southeast-3:123456789012:cluster/ccapi"
  subnet_ids         = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  security_group_ids = ["sg-0123456789abcdef0"]
  container_image    = "123456789012.dkr.ecr.ap-southeast-3.amazonaws.com/ccapi-monitor:1.0.0"
  reports_uri        = "s3://ccapi-reports/weekly-java"
  cache_uri          = "s3://ccapi-cache/checkpoints"
  gee_secret_arn     = "arn:aws:secretsmanager:ap-southeast-3:123456789012:secret:ccapi/gee-key-AbCdEf"
  kms_key_arn        = "arn:aws:kms:ap-southeast-3:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
  success_emails     = ["ops@example.com"]
  failure_emails     = ["oncall@example.com", "ops@example.com"]
}

run "definition_renders_and_is_allowed" {
  command = apply

  assert {
    condition     = can(jsondecode(aws_sfn_state_machine.weekly.definition).States)
    error_message = "The rendered definition is not valid JSON with States."
  }

  assert {
    condition     = length(regexall("[$][{]", aws_sfn_state_machine.weekly.definition)) == 0
    error_message = "A placeholder was left unrendered."
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.weekly.definition).States.RunWeeklyMonitoring.Parameters.TaskDefinition == aws_ecs_task_definition.worker.arn
    error_message = "RunWeeklyMonitoring does not run the worker task definition."
  }

  # Every Task state's service action is allowed by the role, on the very resource the state names.
  assert {
    condition = alltrue([
      for name, state in jsondecode(aws_sfn_state_machine.weekly.definition).States : anytrue([
        for st in jsondecode(aws_iam_role_policy.state_machine.policy).Statement :
        st.Effect == "Allow" &&
        contains(st.Action, {
          "arn:aws:states:::ecs:runTask.waitForTaskToken"     = "ecs:RunTask"
          "arn:aws:states:::sns:publish"                      = "sns:Publish"
          "arn:aws:states:::aws-sdk:cloudwatch:putMetricData" = "cloudwatch:PutMetricData"
        }[state.Resource]) &&
        (
          contains(st.Resource, "*") ||
          contains(st.Resource, try(state.Parameters.TaskDefinition, state.Parameters.TopicArn, "no resource named"))
        )
      ]) if state.Type == "Task"
    ])
    error_message = "A Task state calls an action the state machine role does not allow on that resource."
  }

  # ecs:RunTask also needs iam:PassRole on both task roles.
  assert {
    condition = anytrue([
      for st in jsondecode(aws_iam_role_policy.state_machine.policy).Statement :
      contains(st.Action, "iam:PassRole") &&
      toset(st.Resource) == toset([aws_iam_role.task.arn, aws_iam_role.task_execution.arn])
    ])
    error_message = "iam:PassRole must be scoped to the task role and the task execution role."
  }

  # The topics are KMS-encrypted, so publishing needs the key (through SNS only).
  assert {
    condition = anytrue([
      for st in jsondecode(aws_iam_role_policy.state_machine.policy).Statement :
      contains(st.Action, "kms:GenerateDataKey") && contains(st.Resource, var.kms_key_arn) &&
      try(st.Condition.StringEquals["kms:ViaService"] == "sns.ap-southeast-3.amazonaws.com", false)
    ]) && aws_sns_topic.success.kms_master_key_id == var.kms_key_arn && aws_sns_topic.failure.kms_master_key_id == var.kms_key_arn
    error_message = "Encrypted topics need kms:GenerateDataKey for the state machine, via SNS."
  }

  # PutMetricData carries the namespace condition wherever it is granted.
  assert {
    condition = alltrue([
      for st in concat(
        jsondecode(aws_iam_role_policy.state_machine.policy).Statement,
        jsondecode(aws_iam_role_policy.task.policy).Statement,
      ) : try(st.Condition.StringEquals["cloudwatch:namespace"] == var.metric_namespace, false)
      if contains(st.Action, "cloudwatch:PutMetricData")
    ])
    error_message = "cloudwatch:PutMetricData must be limited to the metric namespace."
  }

  assert {
    condition     = aws_sfn_state_machine.weekly.tracing_configuration[0].enabled && aws_sfn_state_machine.weekly.type == "STANDARD"
    error_message = "The state machine must be STANDARD with X-Ray tracing."
  }

  assert {
    condition     = jsondecode(aws_scheduler_schedule.weekly.target[0].input).run_date == "<aws.scheduler.scheduled-time>"
    error_message = "The schedule must pass the scheduled time as run_date."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.failure_email) == 2 && length(aws_sns_topic_subscription.success_email) == 1
    error_message = "One email subscription per address and topic."
  }

  assert {
    condition     = !can(jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].dependsOn) && length(jsondecode(aws_ecs_task_definition.worker.container_definitions)) == 1
    error_message = "Without the sidecar the worker runs alone and depends on nothing."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.missing_success.period * aws_cloudwatch_metric_alarm.missing_success.evaluation_periods <= 604800
    error_message = "CloudWatch rejects alarms that look back more than 7 days."
  }
}

run "xray_sidecar_is_optional" {
  command = plan

  variables {
    enable_xray_sidecar = true
  }

  assert {
    condition     = length(jsondecode(aws_ecs_task_definition.worker.container_definitions)) == 2
    error_message = "enable_xray_sidecar adds the X-Ray daemon container."
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].readonlyRootFilesystem
    error_message = "The worker's root filesystem must be read-only."
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].dependsOn[0].containerName == "xray-daemon"
    error_message = "The worker starts after the X-Ray daemon."
  }
}

run "rejects_bad_cron" {
  command = plan

  variables {
    schedule_expression = "cron(0 6 * * MON *)"
  }

  expect_failures = [var.schedule_expression]
}

run "rejects_cron_with_five_fields" {
  command = plan

  variables {
    schedule_expression = "cron(0 6 ? * MON)"
  }

  expect_failures = [var.schedule_expression]
}

run "rejects_bad_cpu_memory_pair" {
  command = plan

  variables {
    task_cpu    = 256
    task_memory = 4096
  }

  expect_failures = [var.task_memory]
}

run "rejects_unknown_cpu" {
  command = plan

  variables {
    task_cpu    = 3000
    task_memory = 8192
  }

  expect_failures = [var.task_cpu]
}

run "rejects_bad_email" {
  command = plan

  variables {
    failure_emails = ["oncall@example.com", "not-an-email"]
  }

  expect_failures = [var.failure_emails]
}

run "single_is_the_default_fan_out" {
  command = plan

  assert {
    condition     = can(jsondecode(local.deployed_state_machine_definition).States.RunWeeklyMonitoring) && !can(jsondecode(local.deployed_state_machine_definition).States.RunShards)
    error_message = "fan_out defaults to single: one RunWeeklyMonitoring task, no Map."
  }
}

run "fan_out_map_runs_shards_then_assembles_into_the_shared_tail" {
  command = apply

  variables {
    fan_out    = "map"
    shard_size = 12
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.weekly.definition).States.RunShards.Type == "Map" && !can(jsondecode(aws_sfn_state_machine.weekly.definition).States.RunWeeklyMonitoring)
    error_message = "fan_out = map deploys the Map variant without the single run state."
  }

  assert {
    condition     = length(regexall("[$][{]", aws_sfn_state_machine.weekly.definition)) == 0
    error_message = "A placeholder was left unrendered in the fan-out definition."
  }

  assert {
    condition = alltrue([
      for name in ["CheckExecutionStatus", "ExtractResults", "PublishMetrics", "NotifySuccess", "HandlePartialFailure", "NotifyPartialFailure", "NotifyFailure", "FailExecution"] :
      jsondecode(aws_sfn_state_machine.weekly.definition).States[name] == jsondecode(local.state_machine_definition).States[name]
    ]) && jsondecode(aws_sfn_state_machine.weekly.definition).States.Assemble.Next == "CheckExecutionStatus"
    error_message = "The fan-out variant must share the single variant's tail, entered from Assemble."
  }

  assert {
    condition     = contains(jsondecode(aws_sfn_state_machine.weekly.definition).States.ValidateInputs.Parameters.Overrides.ContainerOverrides[0].Environment, { Name = "CCAPI_SHARD_SIZE", Value = "12" })
    error_message = "ValidateInputs must plan with the configured shard_size."
  }

  # The Map's own Task (nested in ItemProcessor) and Assemble run the worker task definition,
  # which the role may run: an INLINE Map needs no IAM beyond the single variant's.
  assert {
    condition = alltrue([
      for state in [
        jsondecode(aws_sfn_state_machine.weekly.definition).States.RunShards.ItemProcessor.States.RunShard,
        jsondecode(aws_sfn_state_machine.weekly.definition).States.Assemble,
        jsondecode(aws_sfn_state_machine.weekly.definition).States.ValidateInputs,
        ] : state.Parameters.TaskDefinition == aws_ecs_task_definition.worker.arn && anytrue([
          for st in jsondecode(aws_iam_role_policy.state_machine.policy).Statement :
          st.Effect == "Allow" && contains(st.Action, "ecs:RunTask") &&
          (contains(st.Resource, "*") || contains(st.Resource, state.Parameters.TaskDefinition))
      ])
    ])
    error_message = "Every fan-out Task must run the worker task definition the role may run."
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.weekly.definition).States.RunShards.ItemProcessor.ProcessorConfig.Mode == "INLINE"
    error_message = "The Map is INLINE (docs/scaling.md)."
  }
}

run "rejects_unknown_fan_out" {
  command = plan

  variables {
    fan_out = "distributed"
  }

  expect_failures = [var.fan_out]
}

run "rejects_fractional_shard_size" {
  command = plan

  variables {
    shard_size = 2.5
  }

  expect_failures = [var.shard_size]
}
