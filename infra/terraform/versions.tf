terraform {
  required_version = ">= 1.9.0" # cross-variable validation (task_memory checks task_cpu)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
