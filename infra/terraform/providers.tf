# This folder is the root module operators apply (docs/deployment.md), so it configures the
# provider: aws_region picks the region; null falls back to AWS_REGION / the CLI profile.
provider "aws" {
  region = var.aws_region
}

variable "aws_region" {
  description = "Region to deploy into (e.g. ap-southeast-3, Jakarta). null: AWS_REGION or the profile's region. Must be the region of ecs_cluster_arn, the subnets and the secret."
  type        = string
  default     = null

  validation {
    condition     = var.aws_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as ap-southeast-3."
  }
}
