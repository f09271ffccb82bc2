output "state_machine_arn" {
  description = "ARN of the weekly state machine (start executions here)."
  value       = aws_sfn_state_machine.weekly.arn
}

output "state_machine_name" {
  description = "Name of the weekly state machine."
  value       = aws_sfn_state_machine.weekly.name
}

output "state_machine_definition" {
  description = "The rendered ASL definition."
  value       = aws_sfn_state_machine.weekly.definition
}

output "task_definition_arn" {
  description = "Worker task definition (with revision)."
  value       = aws_ecs_task_definition.worker.arn
}

output "success_topic_arn" {
  description = "SNS topic for successful runs."
  value       = aws_sns_topic.success.arn
}

output "failure_topic_arn" {
  description = "SNS topic for failed and partial runs and for alarms."
  value       = aws_sns_topic.failure.arn
}

output "schedule_arn" {
  description = "EventBridge Scheduler schedule that starts the weekly run."
  value       = aws_scheduler_schedule.weekly.arn
}

output "schedule_dlq_url" {
  description = "Dead-letter queue of the schedule (events it could not deliver)."
  value       = aws_sqs_queue.schedule_dlq.url
}

output "worker_log_group_name" {
  description = "Log group of the worker container."
  value       = aws_cloudwatch_log_group.worker.name
}

output "state_machine_log_group_name" {
  description = "Log group of the state machine."
  value       = aws_cloudwatch_log_group.state_machine.name
}

output "task_role_arn" {
  description = "Role the worker runs as."
  value       = aws_iam_role.task.arn
}

output "task_execution_role_arn" {
  description = "Role the ECS agent uses to pull the image, write logs and read the secret."
  value       = aws_iam_role.task_execution.arn
}

output "state_machine_role_arn" {
  description = "Role of the state machine."
  value       = aws_iam_role.state_machine.arn
}

output "alarm_arns" {
  description = "CloudWatch alarms, by purpose."
  value = {
    executions_failed    = aws_cloudwatch_metric_alarm.event["executions_failed"].arn
    executions_timed_out = aws_cloudwatch_metric_alarm.event["executions_timed_out"].arn
    missing_success      = aws_cloudwatch_metric_alarm.missing_success.arn
    schedule_dlq         = aws_cloudwatch_metric_alarm.event["schedule_dlq"].arn
  }
}

output "start_execution_command" {
  description = "AWS CLI command that starts a manual run for a given date."
  value       = "aws stepfunctions start-execution --region ${local.region} --state-machine-arn ${aws_sfn_state_machine.weekly.arn} --name manual-$(date -u +%Y%m%dT%H%M%S) --input '{\"run_date\": \"YYYY-MM-DD\"}'"
}

output "dashboard_url" {
  description = "CloudWatch dashboard of the weekly runs."
  value       = local.dashboard_url
}

output "slack_notifier_function_name" {
  description = "Lambda that posts to Slack (null when slack_webhook_secret_arn is not set)."
  value       = local.slack_enabled ? aws_lambda_function.slack[0].function_name : null
}
