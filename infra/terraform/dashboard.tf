# One CloudWatch dashboard per environment: what a person checks on Monday afternoon.
# Metric names are the ones the worker (ccapi_monitor/aws/metrics.py) and the state machine
# publish; Earth Engine failed requests come from a metric filter on the worker's JSON logs.

locals {
  # Metric filters cannot set constant dimensions, so the environment goes into the name instead.
  ee_failure_metric = "EarthEngineRequestFailures-${var.environment}"

  # Per widget: the project's own metrics as metric name => label (namespace and Environment
  # added below), plus AWS metrics written out in full.
  dashboard_widgets = [
    {
      title  = "Runs (per day)"
      stat   = "Sum"
      custom = { WeeklyMonitoringSuccess = "succeeded", WeeklyRunCompleted = "completed (succeeded, partial, skipped)", WeeklyMonitoringSkipped = "skipped (calendar)" }
      aws = [
        ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.weekly.arn, { label = "executions failed (incl. partial)" }],
        ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", aws_sfn_state_machine.weekly.arn, { label = "executions timed out" }],
      ]
    },
    { title = "Duration (seconds)", stat = "Maximum", custom = { ExecutionDuration = "execution (from the callback)", WorkerDuration = "worker" }, aws = [] },
    { title = "Regions", stat = "Maximum", custom = { RegionsSucceeded = "succeeded", RegionsFailed = "failed", RegionsInsufficientData = "insufficient observations" }, aws = [] },
    { title = "Hectares detected per run", stat = "Maximum", custom = { HectaresCleared = "vegetation cleared", HectaresBuilt = "built up" }, aws = [] },
    {
      title  = "Earth Engine failed requests (retried unless the budget ran out)"
      stat   = "Sum"
      custom = {}
      aws    = [[var.metric_namespace, local.ee_failure_metric, { label = "failed requests" }]]
    },
    {
      title  = "Dead-letter queues (messages waiting)"
      stat   = "Maximum"
      custom = {}
      aws = concat(
        [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.schedule_dlq.name, { label = "schedule DLQ" }]],
        local.slack_enabled ? [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.slack_dlq[0].name, { label = "Slack notifier DLQ" }]] : [],
      )
    },
  ]
  dashboard_metric_widgets = [
    for w in local.dashboard_widgets : {
      title = w.title
      stat  = w.stat
      metrics = concat(
        [for metric, label in w.custom : [var.metric_namespace, metric, "Environment", var.environment, { label = label }]],
        w.aws,
      )
    }
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
