locals {
  # Alarms that fire on a single occurrence within five minutes, by key.
  event_alarms = {
    executions_failed = {
      namespace   = "AWS/States"
      metric      = "ExecutionsFailed"
      dimensions  = { StateMachineArn = aws_sfn_state_machine.weekly.arn }
      statistic   = "Sum"
      suffix      = "executions-failed"
      description = "A ccapi-monitor execution failed (including partial failures). See the failure topic message and the execution history."
    }
    executions_timed_out = {
      namespace   = "AWS/States"
      metric      = "ExecutionsTimedOut"
      dimensions  = { StateMachineArn = aws_sfn_state_machine.weekly.arn }
      statistic   = "Sum"
      suffix      = "executions-timed-out"
      description = "A ccapi-monitor execution hit its execution timeout: no notification state ran."
    }
    schedule_dlq = {
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = aws_sqs_queue.schedule_dlq.name }
      statistic   = "Maximum"
      suffix      = "schedule-dlq"
      description = "EventBridge Scheduler could not start the state machine; the event is in the dead-letter queue."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "event" {
  for_each            = local.event_alarms
  alarm_name          = "${local.name}-${each.value.suffix}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.failure.arn]
  tags                = local.tags
}

# The schedule stopped (or every run failed): no WeeklyRunCompleted datapoint for N daily periods.
# The state machine publishes it, value 1, for succeeded, partial and skipped runs, so a partial
# week (already reported by executions-failed) or a holiday does not trip it. Missing data is
# "missing", not "breaching": a new alarm starts in INSUFFICIENT_DATA and, with no transition,
# notifies nobody right after deploy; once runs have completed, N days without one move it
# OK -> INSUFFICIENT_DATA, which insufficient_data_actions report. (CloudWatch: "missing" - if all
# datapoints in the evaluation range are missing, the alarm transitions to INSUFFICIENT_DATA.)
# CloudWatch caps Period x EvaluationPeriods at 7 days, hence daily periods and at most 7 of them.
resource "aws_cloudwatch_metric_alarm" "missing_success" {
  alarm_name                = "${local.name}-no-completed-run"
  alarm_description         = "No weekly run completed (succeeded, partial or skipped) for ${var.missing_success_alarm_days} days: the schedule stopped or every run failed. INSUFFICIENT_DATA is the signal: check the schedule (DLQ) and the failure notifications."
  namespace                 = var.metric_namespace
  metric_name               = "WeeklyRunCompleted"
  dimensions                = { Environment = var.environment }
  statistic                 = "Sum"
  period                    = 86400
  evaluation_periods        = var.missing_success_alarm_days
  datapoints_to_alarm       = 1
  threshold                 = 1
  comparison_operator       = "LessThanThreshold"
  treat_missing_data        = "missing"
  alarm_actions             = [aws_sns_topic.failure.arn]
  insufficient_data_actions = [aws_sns_topic.failure.arn]
  ok_actions                = [aws_sns_topic.failure.arn]
  tags                      = local.tags
}
