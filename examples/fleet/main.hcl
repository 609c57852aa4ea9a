# A fleet in HCL: web servers in every region of a map, an API service in
# one, both from one module, on the newest Amazon Linux 2023 image of their
# region (a data source that kiln keeps watching: a newer image rolls the
# instances).
# Runs against the built-in simulator:
#
#   kiln run --sim --once examples/fleet
#   kiln run --sim --once --var 'regions={"us-east-1"=3}' examples/fleet
#   kiln output examples/fleet
graph = "fleet"

variable "regions" {
  description = "Web servers per region."
  type        = map(number)
  default = {
    "us-east-1" = 2
    "eu-west-1" = 1
  }
  validation {
    condition     = length([for n in values(var.regions) : n if n < 0 || n > 20]) == 0
    error_message = "Each region takes 0 to 20 web servers."
  }
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

locals {
  team = "shop"
}

module "web" {
  for_each = var.regions
  source   = "./modules/service"
  name     = "web-${each.key}"
  region   = each.key
  size     = each.value
  type     = var.instance_type
  team     = local.team
}

module "api" {
  source = "./modules/service"
  name   = "api"
  region = "us-east-1"
  size   = 1
  type   = var.instance_type
  team   = local.team
}

resource "file" "inventory" {
  path = "fleet.out/inventory.txt"
  content = templatefile("inventory.tpl", {
    web = { for region, m in module.web : region => m.private_ips }
    api = module.api.private_ips
  })
}

output "images" {
  value = merge({ for region, m in module.web : region => m.image }, { api = module.api.image })
}

output "web_ips" {
  value = { for region, m in module.web : region => m.private_ips }
}
