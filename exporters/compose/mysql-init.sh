#!/bin/sh
# Runs once, on the first start of the compose MySQL: the platform's account and the exporter's
# least-privilege account (the same grants `obsctl stack up` gives, obsctl/stack/mysql_setup.py).
set -eu
mysql -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
CREATE DATABASE IF NOT EXISTS platform CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'platform'@'%' IDENTIFIED BY '${PLATFORM_MYSQL_PASSWORD}';
GRANT ALL PRIVILEGES ON platform.* TO 'platform'@'%';
CREATE USER IF NOT EXISTS 'obsctl_exporter'@'%' IDENTIFIED BY '${EXPORTER_MYSQL_PASSWORD}'
  WITH MAX_USER_CONNECTIONS 10;
GRANT SELECT ON platform.* TO 'obsctl_exporter'@'%';
GRANT SELECT ON performance_schema.* TO 'obsctl_exporter'@'%';
GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'obsctl_exporter'@'%';
FLUSH PRIVILEGES;
SQL
