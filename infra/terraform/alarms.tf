locals {
  # Step Functions' own metrics that mean an execution went wrong, by alarm key.
  execution_alarms = {
    executions_failed = {
      metric      = "ExecutionsFailed"
      suffix      = "executions-failed"
      description = "A ccapi-monitor execution failed (including partial failures). See the failure topic message and the execution history."
    }
    executions_timed_out = {
      metric      = "ExecutionsTimedOut"
      suffix      = "executions-timed-out"
      description = "A ccapi-monitor execution hit its execution timeout: no notification state ran."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "execution" {
  for_each            = local.execution_alarms
  alarm_name          = "${local.name}-${each.value.suffix}"
  alarm_description   = each.value.description
  namespace           = "AWS/States"
  metric_name         = each.value.metric
  dimensions          = { StateMachineArn = aws_sfn_state_machine.weekly.arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.failure.arn]
  tags                = local.tags
}

# The schedule stopped (or every run failed): no success datapoint in the last N daily periods.
# CloudWatch caps Period x EvaluationPeriods at 7 days, hence daily periods and at most 7 of them.
resource "aws_cloudwatch_metric_alarm" "missing_success" {
  alarm_name          = "${local.name}-no-weekly-success"
  alarm_description   = "No WeeklyMonitoringSuccess datapoint for ${var.missing_success_alarm_days} daily periods: the schedule stopped or every run failed."
  namespace           = var.metric_namespace
  metric_name         = "WeeklyMonitoringSuccess"
  dimensions          = { Environment = var.environment }
  statistic           = "Sum"
  period              = 86400
  evaluation_periods  = var.missing_success_alarm_days
  datapoints_to_alarm = var.missing_success_alarm_days
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.failure.arn]
  ok_actions          = [aws_sns_topic.failure.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "schedule_dlq" {
  alarm_name          = "${local.name}-schedule-dlq"
  alarm_description   = "EventBridge Scheduler could not start the state machine; the event is in the dead-letter queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.schedule_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.failure.arn]
  tags                = local.tags
}
