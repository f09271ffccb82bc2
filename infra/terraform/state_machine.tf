locals {
  # The names both ASL templates may use (state_machine_fan_out.asl.json adds shard_size).
  state_machine_template_variables = {
    ecs_cluster_arn        = var.ecs_cluster_arn
    task_definition_arn    = aws_ecs_task_definition.worker.arn
    container_name         = var.container_name
    subnet_ids_csv         = join(",", var.subnet_ids)
    security_group_ids_csv = join(",", var.security_group_ids)
    success_topic_arn      = aws_sns_topic.success.arn
    failure_topic_arn      = aws_sns_topic.failure.arn
    environment            = var.environment
    metric_namespace       = var.metric_namespace
    log_group_name         = aws_cloudwatch_log_group.worker.name
    aws_region             = local.region
    dashboard_url          = local.dashboard_url
    reports_bucket         = local.reports_bucket
    reports_key_prefix     = local.reports_prefix == "" ? "" : "${local.reports_prefix}/"
  }
  # The template is valid JSON; jsondecode() makes a broken rendering fail at plan time.
  state_machine_definition = jsonencode(jsondecode(templatefile("${path.module}/state_machine.asl.json", local.state_machine_template_variables)))
}

resource "aws_sfn_state_machine" "weekly" {
  #checkov:skip=CKV_AWS_285:Execution data would log the task token (RunTask parameters) and whole payloads; every event is still logged at level ALL without its data.
  name       = local.name
  type       = "STANDARD"
  role_arn   = aws_iam_role.state_machine.arn
  definition = local.deployed_state_machine_definition # fan_out.tf: single or map

  logging_configuration {
    log_destination = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    level           = "ALL"
    # Execution data would put the task token (RunTask parameters) and full payloads into the logs.
    include_execution_data = false
  }

  tracing_configuration {
    enabled = true
  }

  tags = local.tags

  # The role's policy must exist before Step Functions validates the logging destination.
  depends_on = [aws_iam_role_policy.state_machine]
}
