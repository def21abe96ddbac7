-- The read-only ClickHouse user of the query path and Grafana: written by
-- `python -m deploy.query`; docker-compose.yml runs it when the server first starts.
CREATE USER IF NOT EXISTS `cqrs_reader` IDENTIFIED WITH sha256_password BY 'cqrs_reader';
ALTER USER `cqrs_reader` SETTINGS readonly = 2, allow_introspection_functions = 0 CONST, max_execution_time = 30.0 CONST, max_rows_to_read = 1000000000 CONST, max_bytes_to_read = 107374182400 CONST, max_result_rows = 100000 CONST, max_result_bytes = 67108864 CONST, max_memory_usage = 2147483648 CONST;
GRANT SELECT ON *.* TO `cqrs_reader`;
REVOKE SELECT ON system.* FROM `cqrs_reader`;
GRANT SELECT ON system.`one` TO `cqrs_reader`;
GRANT SELECT ON system.`numbers` TO `cqrs_reader`;
GRANT SELECT ON system.`numbers_mt` TO `cqrs_reader`;
GRANT SELECT ON system.`zeros` TO `cqrs_reader`;
GRANT SELECT ON system.`zeros_mt` TO `cqrs_reader`;
GRANT SELECT ON system.`databases` TO `cqrs_reader`;
GRANT SELECT ON system.`tables` TO `cqrs_reader`;
GRANT SELECT ON system.`columns` TO `cqrs_reader`;
GRANT SELECT ON system.`parts` TO `cqrs_reader`;
GRANT SELECT ON system.`functions` TO `cqrs_reader`;
GRANT SELECT ON system.`table_functions` TO `cqrs_reader`;
GRANT SELECT ON system.`data_type_families` TO `cqrs_reader`;
GRANT SELECT ON system.`time_zones` TO `cqrs_reader`;
GRANT SELECT ON system.`metrics` TO `cqrs_reader`;
GRANT CREATE TEMPORARY TABLE ON *.* TO `cqrs_reader`;
