"""contracts, catalogue, rate versions and the commission ledger

Revision ID: 0002
Revises: 0001
Created: 2026-11-22 02:21:13.917593

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


# Frozen as written (crm.chain produces the same for new tables; never edit these):
# the ledger is append-only and hash-chained; rate versions and contract events are immutable.
GUARDS = {
    'sqlite': [
        "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END",
        "CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: DELETE refused'); END",
        "CREATE TRIGGER ledger_entries_insert_guard BEFORE INSERT ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger_entries: position must be last+1') WHERE NEW.position IS NOT (SELECT COALESCE(MAX(position), 0) + 1 FROM ledger_entries); SELECT RAISE(ABORT, 'ledger_entries: prev_hash must equal the last hash') WHERE NEW.prev_hash IS NOT COALESCE((SELECT hash FROM ledger_entries ORDER BY position DESC LIMIT 1), '0000000000000000000000000000000000000000000000000000000000000000'); SELECT RAISE(ABORT, 'ledger_entries: idempotency key exists') WHERE EXISTS (SELECT 1 FROM ledger_entries WHERE idempotency_key = NEW.idempotency_key); END",
        "CREATE TRIGGER rate_versions_no_update BEFORE UPDATE ON rate_versions BEGIN SELECT RAISE(ABORT, 'rate_versions is immutable: UPDATE refused'); END",
        "CREATE TRIGGER rate_versions_no_delete BEFORE DELETE ON rate_versions BEGIN SELECT RAISE(ABORT, 'rate_versions is immutable: DELETE refused'); END",
        "CREATE TRIGGER rate_amounts_no_update BEFORE UPDATE ON rate_amounts BEGIN SELECT RAISE(ABORT, 'rate_amounts is immutable: UPDATE refused'); END",
        "CREATE TRIGGER rate_amounts_no_delete BEFORE DELETE ON rate_amounts BEGIN SELECT RAISE(ABORT, 'rate_amounts is immutable: DELETE refused'); END",
        "CREATE TRIGGER rate_tiers_no_update BEFORE UPDATE ON rate_tiers BEGIN SELECT RAISE(ABORT, 'rate_tiers is immutable: UPDATE refused'); END",
        "CREATE TRIGGER rate_tiers_no_delete BEFORE DELETE ON rate_tiers BEGIN SELECT RAISE(ABORT, 'rate_tiers is immutable: DELETE refused'); END",
        "CREATE TRIGGER contract_events_no_update BEFORE UPDATE ON contract_events BEGIN SELECT RAISE(ABORT, 'contract_events is immutable: UPDATE refused'); END",
        "CREATE TRIGGER contract_events_no_delete BEFORE DELETE ON contract_events BEGIN SELECT RAISE(ABORT, 'contract_events is immutable: DELETE refused'); END",
    ],
    'postgresql': [
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        "CREATE OR REPLACE FUNCTION doorstep_chain_insert_guard() RETURNS trigger\nLANGUAGE plpgsql AS $$\nDECLARE\n    last_pos bigint;\n    last_hash text;\nBEGIN\n    EXECUTE format('SELECT position, hash FROM %I.%I ORDER BY position DESC LIMIT 1',\n                   TG_TABLE_SCHEMA, TG_TABLE_NAME)\n        INTO last_pos, last_hash;\n    IF NEW.position IS DISTINCT FROM COALESCE(last_pos, 0) + 1 THEN\n        RAISE EXCEPTION '%: position must be last+1', TG_TABLE_NAME USING ERRCODE = '23001';\n    END IF;\n    IF NEW.prev_hash IS DISTINCT FROM COALESCE(last_hash, repeat('0', 64)) THEN\n        RAISE EXCEPTION '%: prev_hash must equal the last hash', TG_TABLE_NAME USING ERRCODE = '23001';\n    END IF;\n    RETURN NEW;\nEND\n$$",
        'CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE ledger_entries ENABLE ALWAYS TRIGGER ledger_entries_no_update',
        'CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE ledger_entries ENABLE ALWAYS TRIGGER ledger_entries_no_delete',
        'CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE ledger_entries ENABLE ALWAYS TRIGGER ledger_entries_no_truncate',
        'CREATE TRIGGER ledger_entries_insert_guard BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION doorstep_chain_insert_guard()',
        'ALTER TABLE ledger_entries ENABLE ALWAYS TRIGGER ledger_entries_insert_guard',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER rate_versions_no_update BEFORE UPDATE ON rate_versions FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_versions ENABLE ALWAYS TRIGGER rate_versions_no_update',
        'CREATE TRIGGER rate_versions_no_delete BEFORE DELETE ON rate_versions FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_versions ENABLE ALWAYS TRIGGER rate_versions_no_delete',
        'CREATE TRIGGER rate_versions_no_truncate BEFORE TRUNCATE ON rate_versions FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_versions ENABLE ALWAYS TRIGGER rate_versions_no_truncate',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER rate_amounts_no_update BEFORE UPDATE ON rate_amounts FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_amounts ENABLE ALWAYS TRIGGER rate_amounts_no_update',
        'CREATE TRIGGER rate_amounts_no_delete BEFORE DELETE ON rate_amounts FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_amounts ENABLE ALWAYS TRIGGER rate_amounts_no_delete',
        'CREATE TRIGGER rate_amounts_no_truncate BEFORE TRUNCATE ON rate_amounts FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_amounts ENABLE ALWAYS TRIGGER rate_amounts_no_truncate',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER rate_tiers_no_update BEFORE UPDATE ON rate_tiers FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_tiers ENABLE ALWAYS TRIGGER rate_tiers_no_update',
        'CREATE TRIGGER rate_tiers_no_delete BEFORE DELETE ON rate_tiers FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_tiers ENABLE ALWAYS TRIGGER rate_tiers_no_delete',
        'CREATE TRIGGER rate_tiers_no_truncate BEFORE TRUNCATE ON rate_tiers FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE rate_tiers ENABLE ALWAYS TRIGGER rate_tiers_no_truncate',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER contract_events_no_update BEFORE UPDATE ON contract_events FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE contract_events ENABLE ALWAYS TRIGGER contract_events_no_update',
        'CREATE TRIGGER contract_events_no_delete BEFORE DELETE ON contract_events FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE contract_events ENABLE ALWAYS TRIGGER contract_events_no_delete',
        'CREATE TRIGGER contract_events_no_truncate BEFORE TRUNCATE ON contract_events FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE contract_events ENABLE ALWAYS TRIGGER contract_events_no_truncate',
    ],
}
GUARDS_DROP = {
    'sqlite': ['DROP TRIGGER IF EXISTS ledger_entries_no_update', 'DROP TRIGGER IF EXISTS ledger_entries_no_delete', 'DROP TRIGGER IF EXISTS ledger_entries_insert_guard', 'DROP TRIGGER IF EXISTS rate_versions_no_update', 'DROP TRIGGER IF EXISTS rate_versions_no_delete', 'DROP TRIGGER IF EXISTS rate_amounts_no_update', 'DROP TRIGGER IF EXISTS rate_amounts_no_delete', 'DROP TRIGGER IF EXISTS rate_tiers_no_update', 'DROP TRIGGER IF EXISTS rate_tiers_no_delete', 'DROP TRIGGER IF EXISTS contract_events_no_update', 'DROP TRIGGER IF EXISTS contract_events_no_delete'],
    'postgresql': ['DROP TRIGGER IF EXISTS ledger_entries_no_update ON ledger_entries', 'DROP TRIGGER IF EXISTS ledger_entries_no_delete ON ledger_entries', 'DROP TRIGGER IF EXISTS ledger_entries_insert_guard ON ledger_entries', 'DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries', 'DROP TRIGGER IF EXISTS rate_versions_no_update ON rate_versions', 'DROP TRIGGER IF EXISTS rate_versions_no_delete ON rate_versions', 'DROP TRIGGER IF EXISTS rate_versions_no_truncate ON rate_versions', 'DROP TRIGGER IF EXISTS rate_amounts_no_update ON rate_amounts', 'DROP TRIGGER IF EXISTS rate_amounts_no_delete ON rate_amounts', 'DROP TRIGGER IF EXISTS rate_amounts_no_truncate ON rate_amounts', 'DROP TRIGGER IF EXISTS rate_tiers_no_update ON rate_tiers', 'DROP TRIGGER IF EXISTS rate_tiers_no_delete ON rate_tiers', 'DROP TRIGGER IF EXISTS rate_tiers_no_truncate ON rate_tiers', 'DROP TRIGGER IF EXISTS contract_events_no_update ON contract_events', 'DROP TRIGGER IF EXISTS contract_events_no_delete ON contract_events', 'DROP TRIGGER IF EXISTS contract_events_no_truncate ON contract_events'],
}


def upgrade():
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('buildings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('footprint', sa.Text(), nullable=True),
    sa.Column('apartments', sa.Integer(), nullable=False),
    sa.Column('entrances', sa.Integer(), nullable=False),
    sa.Column('floors', sa.Integer(), nullable=True),
    sa.Column('connected_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('apartments >= 1', name=op.f('ck_buildings_apartments_positive')),
    sa.CheckConstraint('entrances >= 1', name=op.f('ck_buildings_entrances_positive')),
    sa.CheckConstraint('floors IS NULL OR floors >= 1', name=op.f('ck_buildings_floors_positive')),
    sa.CheckConstraint('lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180', name=op.f('ck_buildings_location_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_buildings')),
    sa.UniqueConstraint('external_id', name=op.f('uq_buildings_external_id'))
    )
    op.create_table('tariffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('is_addon', sa.Boolean(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('speed_mbit', sa.Integer(), nullable=True),
    sa.Column('monthly_fee', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('internet', 'tv', 'phone', 'bundle', 'video_surveillance', 'router_rent')", name=op.f('ck_tariffs_kind_known')),
    sa.CheckConstraint('monthly_fee >= 0', name=op.f('ck_tariffs_fee_not_negative')),
    sa.CheckConstraint('speed_mbit IS NULL OR speed_mbit > 0', name=op.f('ck_tariffs_speed_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariffs')),
    sa.UniqueConstraint('code', name=op.f('uq_tariffs_code'))
    )
    op.create_table('rate_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.DateTime(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('override_bp', sa.Integer(), nullable=False),
    sa.Column('clawback_days', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.CheckConstraint('clawback_days >= 0', name=op.f('ck_rate_versions_clawback_not_negative')),
    sa.CheckConstraint('override_bp BETWEEN 0 AND 10000', name=op.f('ck_rate_versions_override_range')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_rate_versions_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_versions'))
    )
    with op.batch_alter_table('rate_versions', schema=None) as batch_op:
        batch_op.create_index('ix_rate_versions_effective', ['effective_from', 'recorded_at'], unique=False)

    op.create_table('contracts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('supervisor_id', sa.Integer(), nullable=True),
    sa.Column('building_id', sa.Integer(), nullable=False),
    sa.Column('flat', sa.Integer(), nullable=False),
    sa.Column('subscriber_name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('monthly_fee', sa.Integer(), nullable=False),
    sa.Column('adult_confirmed', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('rate_version_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('activated_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('signed', 'paid', 'installation_scheduled', 'activated', 'cancelled')", name=op.f('ck_contracts_status_known')),
    sa.CheckConstraint('adult_confirmed', name=op.f('ck_contracts_adult_confirmed')),
    sa.CheckConstraint('flat >= 1', name=op.f('ck_contracts_flat_positive')),
    sa.ForeignKeyConstraint(['agent_id'], ['users.id'], name=op.f('fk_contracts_agent_id_users')),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_contracts_building_id_buildings')),
    sa.ForeignKeyConstraint(['rate_version_id'], ['rate_versions.id'], name=op.f('fk_contracts_rate_version_id_rate_versions')),
    sa.ForeignKeyConstraint(['supervisor_id'], ['users.id'], name=op.f('fk_contracts_supervisor_id_users')),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_contracts_tariff_id_tariffs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contracts')),
    sa.UniqueConstraint('client_id', name=op.f('uq_contracts_client_id')),
    sa.UniqueConstraint('number', name=op.f('uq_contracts_number'))
    )
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.create_index('ix_contracts_agent_id', ['agent_id'], unique=False)
        batch_op.create_index('ix_contracts_status', ['status'], unique=False)
        batch_op.create_index('ix_contracts_supervisor_id', ['supervisor_id'], unique=False)
        batch_op.create_index('uq_contracts_active_flat', ['building_id', 'flat'], unique=True, sqlite_where=sa.text("status <> 'cancelled'"), postgresql_where=sa.text("status <> 'cancelled'"))

    op.create_table('rate_amounts',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_rate_amounts_amount_not_negative')),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_rate_amounts_tariff_id_tariffs')),
    sa.ForeignKeyConstraint(['version_id'], ['rate_versions.id'], name=op.f('fk_rate_amounts_version_id_rate_versions')),
    sa.PrimaryKeyConstraint('version_id', 'tariff_id', name=op.f('pk_rate_amounts'))
    )
    op.create_table('rate_tiers',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('activations', sa.Integer(), nullable=False),
    sa.Column('bonus_per_activation', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('activations >= 1', name=op.f('ck_rate_tiers_activations_positive')),
    sa.CheckConstraint('bonus_per_activation >= 0', name=op.f('ck_rate_tiers_bonus_not_negative')),
    sa.ForeignKeyConstraint(['version_id'], ['rate_versions.id'], name=op.f('fk_rate_tiers_version_id_rate_versions')),
    sa.PrimaryKeyConstraint('version_id', 'activations', name=op.f('pk_rate_tiers'))
    )
    op.create_table('contract_addons',
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_contract_addons_contract_id_contracts')),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_contract_addons_tariff_id_tariffs')),
    sa.PrimaryKeyConstraint('contract_id', 'tariff_id', name=op.f('pk_contract_addons'))
    )
    op.create_table('contract_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('event_key', sa.String(length=200), nullable=False),
    sa.Column('event', sa.String(length=24), nullable=False),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_contract_events_actor_id_users')),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_contract_events_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_contract_events_contract_id_contracts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_events')),
    sa.UniqueConstraint('event_key', name=op.f('uq_contract_events_event_key'))
    )
    with op.batch_alter_table('contract_events', schema=None) as batch_op:
        batch_op.create_index('ix_contract_events_contract_id', ['contract_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('bucket', sa.String(length=8), nullable=False),
    sa.Column('beneficiary_id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=True),
    sa.Column('rate_version_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('corrects_period', sa.String(length=7), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('ref_position', sa.BigInteger(), nullable=True),
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint("bucket IN ('pending', 'payable')", name=op.f('ck_ledger_entries_bucket_known')),
    sa.CheckConstraint("kind IN ('accrual', 'override', 'release', 'earned', 'void', 'clawback', 'bonus', 'adjustment', 'payout')", name=op.f('ck_ledger_entries_kind_known')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_ledger_entries_actor_id_users')),
    sa.ForeignKeyConstraint(['beneficiary_id'], ['users.id'], name=op.f('fk_ledger_entries_beneficiary_id_users')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_ledger_entries_contract_id_contracts')),
    sa.ForeignKeyConstraint(['rate_version_id'], ['rate_versions.id'], name=op.f('fk_ledger_entries_rate_version_id_rate_versions')),
    sa.ForeignKeyConstraint(['ref_position'], ['ledger_entries.position'], name=op.f('fk_ledger_entries_ref_position_ledger_entries')),
    sa.PrimaryKeyConstraint('position', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_beneficiary', ['beneficiary_id', 'bucket'], unique=False)
        batch_op.create_index('ix_ledger_entries_contract_id', ['contract_id'], unique=False)
        batch_op.create_index('ix_ledger_entries_period', ['period'], unique=False)

    # ### end Alembic commands ###
    for statement in GUARDS[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade():
    for statement in GUARDS_DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_period')
        batch_op.drop_index('ix_ledger_entries_contract_id')
        batch_op.drop_index('ix_ledger_entries_beneficiary')

    op.drop_table('ledger_entries')
    with op.batch_alter_table('contract_events', schema=None) as batch_op:
        batch_op.drop_index('ix_contract_events_contract_id')

    op.drop_table('contract_events')
    op.drop_table('contract_addons')
    op.drop_table('rate_tiers')
    op.drop_table('rate_amounts')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_index('uq_contracts_active_flat', sqlite_where=sa.text("status <> 'cancelled'"), postgresql_where=sa.text("status <> 'cancelled'"))
        batch_op.drop_index('ix_contracts_supervisor_id')
        batch_op.drop_index('ix_contracts_status')
        batch_op.drop_index('ix_contracts_agent_id')

    op.drop_table('contracts')
    with op.batch_alter_table('rate_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_versions_effective')

    op.drop_table('rate_versions')
    op.drop_table('tariffs')
    op.drop_table('buildings')
    # ### end Alembic commands ###
