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
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:ap-southeast-3:123456789012:function:ccapi-monitor-test-slack" }
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
      for name in ["ReadResult", "CheckExecutionStatus", "ExtractResults", "PublishMetrics", "NotifySuccess", "HandlePartialFailure", "NotifyPartialFailure", "NotifyFailure", "FailExecution"] :
      jsondecode(aws_sfn_state_machine.weekly.definition).States[name] == jsondecode(local.state_machine_definition).States[name]
    ]) && jsondecode(aws_sfn_state_machine.weekly.definition).States.Assemble.Next == "ReadResult"
    error_message = "The fan-out variant must share the single variant's tail, entered from Assemble."
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.weekly.definition).States.ValidateInputs.Next == "CheckSkipCalendar" && jsondecode(aws_sfn_state_machine.weekly.definition).States.CheckSkipCalendar.Default == "RunShards" && jsondecode(aws_sfn_state_machine.weekly.definition).States.CheckSkipCalendar.Choices == jsondecode(local.state_machine_definition).States.CheckSkipCalendar.Choices
    error_message = "The fan-out variant must honour the skip calendar: a skipped week notifies, an ordinary one goes on to the Map."
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

# --- Operations: dashboard, Slack on and off, skip calendar, schedule knobs, alarm settings ---

run "dashboard_covers_runs_regions_hectares_retries_and_dlq" {
  command = apply

  variables {
    metric_namespace = "CcapiStaging"
  }

  assert {
    condition     = aws_cloudwatch_dashboard.weekly.dashboard_name == "ccapi-monitor-test"
    error_message = "One dashboard per environment, named like the other resources."
  }

  assert {
    condition = toset([for w in jsondecode(aws_cloudwatch_dashboard.weekly.dashboard_body).widgets : w.properties.title]) == toset([
      "Runs (per day)", "Duration (seconds)", "Regions", "Hectares detected per run",
      "Earth Engine failed requests (retried unless the budget ran out)", "Dead-letter queues (messages waiting)", "Alarms",
    ])
    error_message = "The dashboard must show runs, duration, regions, hectares, Earth Engine retries, DLQ depth and alarms."
  }

  # Every custom metric the dashboard plots lives in the configured namespace.
  assert {
    condition = alltrue(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.weekly.dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[0] == "CcapiStaging" || startswith(m[0], "AWS/")
      ]
    ]))
    error_message = "A dashboard metric is outside metric_namespace."
  }

  assert {
    condition = contains(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.weekly.dashboard_body).widgets : [for m in try(w.properties.metrics, []) : m[1]]
    ]), "WorkerDuration")
    error_message = "The duration widget must show the worker's own duration."
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.ee_request_failures.metric_transformation[0].namespace == "CcapiStaging" && aws_cloudwatch_log_metric_filter.ee_request_failures.pattern == "{ $.event = \"ee request failed\" }"
    error_message = "The Earth Engine failure metric filter must match the worker's log event and use the namespace."
  }

  assert {
    condition     = output.dashboard_url == "https://ap-southeast-3.console.aws.amazon.com/cloudwatch/home?region=ap-southeast-3#dashboards/dashboard/ccapi-monitor-test"
    error_message = "dashboard_url must open this dashboard."
  }

  # metric_namespace reaches the worker, whose PutMetricData the task role limits to that namespace.
  assert {
    condition = contains(
      jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment,
      { name = "CCAPI_METRIC_NAMESPACE", value = "CcapiStaging" }
    )
    error_message = "CCAPI_METRIC_NAMESPACE must carry metric_namespace to the worker."
  }
}

run "slack_off_creates_nothing" {
  command = plan

  assert {
    condition     = length(aws_lambda_function.slack) == 0 && length(aws_sns_topic_subscription.slack) == 0 && length(aws_sqs_queue.slack_dlq) == 0 && length(aws_iam_role.slack) == 0
    error_message = "Without slack_webhook_secret_arn there must be no Slack resources."
  }

  assert {
    condition     = output.slack_notifier_function_name == null
    error_message = "No Slack function name without Slack."
  }
}

run "slack_on_subscribes_both_topics_and_reads_the_secret_only" {
  command = apply

  variables {
    slack_webhook_secret_arn = "arn:aws:secretsmanager:ap-southeast-3:123456789012:secret:ccapi/slack-webhook-AbCdEf"
    # Any existing file stands in for the package: the provider is mocked, only the wiring is tested.
    slack_notifier_zip = "state_machine.asl.json"
  }

  assert {
    condition     = toset(keys(aws_sns_topic_subscription.slack)) == toset(["failure", "success"]) && alltrue([for s in aws_sns_topic_subscription.slack : s.protocol == "lambda" && s.endpoint == aws_lambda_function.slack[0].arn])
    error_message = "The notifier is subscribed to the success and failure topics."
  }

  assert {
    condition     = aws_lambda_permission.slack["failure"].source_arn == aws_sns_topic.failure.arn && aws_lambda_permission.slack["failure"].principal == "sns.amazonaws.com"
    error_message = "Only the topics may invoke the notifier."
  }

  assert {
    condition     = aws_lambda_function.slack[0].environment[0].variables.SLACK_WEBHOOK_SECRET_ARN == var.slack_webhook_secret_arn && !anytrue([for k, v in aws_lambda_function.slack[0].environment[0].variables : startswith(v, "https://hooks.slack.com")])
    error_message = "The function gets the secret's ARN, never the webhook URL."
  }

  assert {
    condition = anytrue([
      for st in jsondecode(aws_iam_role_policy.slack[0].policy).Statement :
      st.Action == ["secretsmanager:GetSecretValue"] && st.Resource == [var.slack_webhook_secret_arn]
    ])
    error_message = "The notifier reads exactly the Slack secret."
  }

  assert {
    condition     = aws_lambda_function.slack[0].dead_letter_config[0].target_arn == aws_sqs_queue.slack_dlq[0].arn && aws_lambda_function.slack[0].kms_key_arn == var.kms_key_arn
    error_message = "Failed deliveries go to an encrypted DLQ; the environment is encrypted with the key."
  }

  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.weekly.dashboard_body).widgets[5].properties.metrics) == 2
    error_message = "With Slack the dashboard also shows the notifier's DLQ."
  }
}

run "slack_failures_only" {
  command = plan

  variables {
    slack_webhook_secret_arn = "arn:aws:secretsmanager:ap-southeast-3:123456789012:secret:ccapi/slack-webhook-AbCdEf"
    slack_notifier_zip       = "state_machine.asl.json"
    slack_notify_success     = false
  }

  assert {
    condition     = keys(aws_sns_topic_subscription.slack) == ["failure"]
    error_message = "slack_notify_success = false subscribes the failure topic only."
  }
}

run "slack_without_package_fails_with_the_command_to_build_it" {
  command = plan

  variables {
    slack_webhook_secret_arn = "arn:aws:secretsmanager:ap-southeast-3:123456789012:secret:ccapi/slack-webhook-AbCdEf"
    slack_notifier_zip       = "build/does-not-exist.zip"
  }

  expect_failures = [aws_lambda_function.slack]
}

run "skip_calendar_reaches_validate_inputs" {
  command = plan

  variables {
    skip_calendar = {
      dates   = { "2026-12-28" = "year-end freeze" }
      windows = [{ start = "2027-01-04", end = "2027-01-10", reason = "Earth Engine maintenance" }]
    }
  }

  assert {
    condition = jsondecode([
      for e in jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment : e.value if e.name == "CCAPI_SKIP_CALENDAR"
      ][0]) == {
      public_holidays_country = "ID"
      dates                   = { "2026-12-28" = "year-end freeze" }
      windows                 = [{ start = "2027-01-04", end = "2027-01-10", reason = "Earth Engine maintenance" }]
    }
    error_message = "CCAPI_SKIP_CALENDAR must carry the calendar, Indonesian holidays on by default."
  }
}

run "skip_calendar_rejects_a_window_ending_before_it_starts" {
  command = plan

  variables {
    skip_calendar = { windows = [{ start = "2027-01-10", end = "2027-01-04", reason = "typo" }] }
  }

  expect_failures = [var.skip_calendar]
}

run "skip_calendar_rejects_a_bad_date" {
  command = plan

  variables {
    skip_calendar = { dates = { "2026-13-01" = "no such month" } }
  }

  expect_failures = [var.skip_calendar]
}

run "schedule_input_carries_the_seed_knobs" {
  command = plan

  variables {
    default_regions_count = 5
    enable_web_scraping   = true
  }

  assert {
    condition = jsondecode(aws_scheduler_schedule.weekly.target[0].input) == {
      run_date        = "<aws.scheduler.scheduled-time>"
      trigger         = "schedule"
      enable_scraping = true
      regions_count   = 5
    }
    error_message = "default_regions_count and enable_web_scraping must reach the execution input."
  }
}

run "schedule_input_leaves_regions_count_out_by_default" {
  command = plan

  assert {
    condition     = !can(jsondecode(aws_scheduler_schedule.weekly.target[0].input).regions_count) && jsondecode(aws_scheduler_schedule.weekly.target[0].input).enable_scraping == false
    error_message = "Without default_regions_count every region runs; scraping is off by default."
  }
}

run "rejects_zero_regions" {
  command = plan

  variables {
    default_regions_count = 0
  }

  expect_failures = [var.default_regions_count]
}

run "no_completed_run_alarm_is_quiet_after_deploy_and_on_partial_weeks" {
  command = apply

  assert {
    condition     = aws_cloudwatch_metric_alarm.missing_success.metric_name == "WeeklyRunCompleted" && aws_cloudwatch_metric_alarm.missing_success.treat_missing_data == "missing"
    error_message = "The alarm watches WeeklyRunCompleted (succeeded, partial, skipped) and treats missing data as missing."
  }

  assert {
    condition     = contains(aws_cloudwatch_metric_alarm.missing_success.insufficient_data_actions, aws_sns_topic.failure.arn)
    error_message = "Going to INSUFFICIENT_DATA (no completed run for N days) must notify the failure topic."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.missing_success.period * aws_cloudwatch_metric_alarm.missing_success.evaluation_periods <= 604800
    error_message = "CloudWatch rejects alarms that look back more than 7 days."
  }

  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.event : a.treat_missing_data == "notBreaching" && a.alarm_actions == toset([aws_sns_topic.failure.arn])])
    error_message = "Event alarms stay quiet without events and notify the failure topic."
  }

  # The schedule's input is encrypted with the key: its role may decrypt with it.
  assert {
    condition = anytrue([
      for st in jsondecode(aws_iam_role_policy.scheduler.policy).Statement :
      st.Action == ["kms:Decrypt"] && st.Resource == [var.kms_key_arn]
    ]) && aws_scheduler_schedule.weekly.kms_key_arn == var.kms_key_arn
    error_message = "The scheduler role needs kms:Decrypt on the schedule's customer-managed key."
  }
}

run "rejects_a_cluster_in_another_region" {
  command = plan

  variables {
    ecs_cluster_arn = "arn:aws:ecs:us-east-1:123456789012:cluster/ccapi"
  }

  expect_failures = [aws_ecs_task_definition.worker]
}
