# A service: its security group and SIZE instances that use it.

variable "name" {
  type = string
}

variable "region" {
  type = string
}

variable "size" {
  type = number
}

variable "type" {
  type = string
}

variable "team" {
  type = string
}

# The newest Amazon Linux 2023 image of the region, read again every 10
# minutes while kiln runs.
data "aws:ami" "al2023" {
  region      = var.region
  owner       = "amazon"
  name        = "al2023-ami-2023.*-kernel-6.1-x86_64"
  most_recent = true
  meta {
    poll = "10m"
  }
}

resource "aws:security_group" "sg" {
  region      = var.region
  description = "${var.name} servers"
  ingress {
    protocol = "tcp"
    ports    = 443
    cidrs    = ["0.0.0.0/0"]
  }
}

resource "aws:ec2" "node" {
  count           = var.size
  region          = var.region
  image           = data.aws_ami.al2023.image_id
  type            = var.type
  security_groups = [aws_security_group.sg.group_id]
  tags = {
    team    = var.team
    service = var.name
  }
}

output "private_ips" {
  value = [for n in aws_ec2.node : n.private_ip]
}

output "image" {
  value = data.aws_ami.al2023.image_id
}
