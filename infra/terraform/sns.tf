resource "aws_sns_topic" "success" {
  name              = "${local.name}-success"
  kms_master_key_id = var.kms_key_arn
  tags              = local.tags
}

resource "aws_sns_topic" "failure" {
  name              = "${local.name}-failure"
  kms_master_key_id = var.kms_key_arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "success_email" {
  for_each  = toset(var.success_emails)
  topic_arn = aws_sns_topic.success.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic_subscription" "failure_email" {
  for_each  = toset(var.failure_emails)
  topic_arn = aws_sns_topic.failure.arn
  protocol  = "email"
  endpoint  = each.value
}
