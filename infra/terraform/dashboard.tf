# One CloudWatch dashboard per environment: what a person checks on Monday afternoon.
# Metric names are the ones the worker (ccapi_monitor/aws/metrics.py) and the state machine
# publish; Earth Engine failed requests come from a metric filter on the worker's JSON logs.

locals {
  # Metric filters cannot set constant dimensions, so the environment goes into the name instead.
  ee_failure_metric = "EarthEngineRequestFailures-${var.environment}"

  dashboard_metric_widgets = [
    {
      title = "Runs (per day)"
      stat  = "Sum"
      metrics = [
        [var.metric_namespace, "WeeklyMonitoringSuccess", "Environment", var.environment, { label = "succeeded" }],
        [var.metric_namespace, "WeeklyRunCompleted", "Environment", var.environment, { label = "completed (succeeded, partial, skipped)" }],
        [var.metric_namespace, "WeeklyMonitoringSkipped", "Environment", var.environment, { label = "skipped (calendar)" }],
        ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.weekly.arn, { label = "executions failed (incl. partial)" }],
        ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", aws_sfn_state_machine.weekly.arn, { label = "executions timed out" }],
      ]
    },
    {
      title = "Duration (seconds)"
      stat  = "Maximum"
      metrics = [
        [var.metric_namespace, "ExecutionDuration", "Environment", var.environment, { label = "execution (from the callback)" }],
        [var.metric_namespace, "WorkerDuration", "Environment", var.environment, { label = "worker" }],
      ]
    },
    {
      title = "Regions"
      stat  = "Maximum"
      metrics = [
        [var.metric_namespace, "RegionsSucceeded", "Environment", var.environment, { label = "succeeded" }],
        [var.metric_namespace, "RegionsFailed", "Environment", var.environment, { label = "failed" }],
        [var.metric_namespace, "RegionsInsufficientData", "Environment", var.environment, { label = "insufficient observations" }],
      ]
    },
    {
      title = "Hectares detected per run"
      stat  = "Maximum"
      metrics = [
        [var.metric_namespace, "HectaresCleared", "Environment", var.environment, { label = "vegetation cleared" }],
        [var.metric_namespace, "HectaresBuilt", "Environment", var.environment, { label = "built up" }],
      ]
    },
    {
      title = "Earth Engine failed requests (retried unless the budget ran out)"
      stat  = "Sum"
      metrics = [
        [var.metric_namespace, local.ee_failure_metric, { label = "failed requests" }],
      ]
    },
    {
      title = "Dead-letter queues (messages waiting)"
      stat  = "Maximum"
      metrics = concat(
        [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.schedule_dlq.name, { label = "schedule DLQ" }]],
        local.slack_enabled ? [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.slack_dlq[0].name, { label = "Slack notifier DLQ" }]] : [],
      )
    },
  ]

  dashboard_body = {
    widgets = concat(
      [
        for i, w in local.dashboard_metric_widgets : {
          type   = "metric"
          x      = (i % 2) * 12
          y      = floor(i / 2) * 6
          width  = 12
          height = 6
          properties = {
            title   = w.title
            region  = local.region
            view    = "timeSeries"
            stacked = false
            stat    = w.stat
            period  = 86400
            start   = "-P90D"
            metrics = w.metrics
          }
        }
      ],
      [
        {
          type   = "alarm"
          x      = 0
          y      = ceil(length(local.dashboard_metric_widgets) / 2) * 6
          width  = 24
          height = 3
          properties = {
            title  = "Alarms"
            alarms = concat([for a in aws_cloudwatch_metric_alarm.event : a.arn], [aws_cloudwatch_metric_alarm.missing_success.arn])
          }
        }
      ],
    )
  }
}

resource "aws_cloudwatch_log_metric_filter" "ee_request_failures" {
  name           = "${local.name}-ee-request-failures"
  log_group_name = aws_cloudwatch_log_group.worker.name
  # The event name ccapi_monitor/detection/ee_quota.py logs once per failed Earth Engine request.
  pattern = "{ $.event = \"ee request failed\" }"

  metric_transformation {
    name      = local.ee_failure_metric
    namespace = var.metric_namespace
    value     = "1"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_dashboard" "weekly" {
  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode(local.dashboard_body)
}
