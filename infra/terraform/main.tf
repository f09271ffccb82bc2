data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "${var.name_prefix}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # s3://bucket/prefix -> bucket and prefix ("" for the whole bucket).
  reports_bucket = regex("^s3://([^/]+)", var.reports_uri)[0]
  reports_prefix = trim(replace(var.reports_uri, "s3://${local.reports_bucket}", ""), "/")
  cache_bucket   = regex("^s3://([^/]+)", var.cache_uri)[0]
  cache_prefix   = trim(replace(var.cache_uri, "s3://${local.cache_bucket}", ""), "/")

  # Object ARNs the worker may read and write, and the matching ListBucket prefixes.
  data_locations = {
    reports = { bucket = local.reports_bucket, prefix = local.reports_prefix }
    cache   = { bucket = local.cache_bucket, prefix = local.cache_prefix }
  }
  object_arns = distinct([
    for l in values(local.data_locations) :
    "arn:${local.partition}:s3:::${l.bucket}/${l.prefix == "" ? "*" : "${l.prefix}/*"}"
  ])
  bucket_arns = distinct([for l in values(local.data_locations) : "arn:${local.partition}:s3:::${l.bucket}"])
  list_prefixes = distinct(flatten([
    for l in values(local.data_locations) : l.prefix == "" ? ["*"] : [l.prefix, "${l.prefix}/*"]
  ]))

  # An ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:tag|@digest]) needs pull permissions on its repository.
  ecr_match          = regexall("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(\\.cn)?/([^:@]+)", var.container_image)
  ecr_repository_arn = length(local.ecr_match) == 0 ? null : "arn:${local.partition}:ecr:${local.ecr_match[0][1]}:${local.ecr_match[0][0]}:repository/${local.ecr_match[0][3]}"

  # No '/' in the name keeps the console link in the notifications a plain URL.
  worker_log_group_name        = "${local.name}-worker"
  state_machine_log_group_name = "/aws/vendedlogs/states/${local.name}"

  # What ValidateInputs reads from CCAPI_SKIP_CALENDAR (ccapi_monitor/skip_calendar.py parses it).
  skip_calendar = {
    public_holidays_country = var.skip_calendar.public_holidays_country
    dates                   = var.skip_calendar.dates
    windows                 = var.skip_calendar.windows
  }

  dashboard_name = local.name
  dashboard_url  = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${local.dashboard_name}"

  tags = merge(var.tags, {
    Application = "ccapi-monitor"
    Environment = var.environment
  })
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = local.worker_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "state_machine" {
  name              = local.state_machine_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}
