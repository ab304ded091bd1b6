"""finance: period closes and snapshots, payouts, adjustments and disputes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:35:36.262019

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# Frozen as written (crm.chain.immutable_ddl produced them; never edit): a close, its snapshots,
# a payout and a dispute's messages never change, so a closed period never reopens.
GUARDS = {
    'sqlite': [
        "CREATE TRIGGER period_closes_no_update BEFORE UPDATE ON period_closes BEGIN SELECT RAISE(ABORT, 'period_closes is immutable: UPDATE refused'); END",
        "CREATE TRIGGER period_closes_no_delete BEFORE DELETE ON period_closes BEGIN SELECT RAISE(ABORT, 'period_closes is immutable: DELETE refused'); END",
        "CREATE TRIGGER period_snapshots_no_update BEFORE UPDATE ON period_snapshots BEGIN SELECT RAISE(ABORT, 'period_snapshots is immutable: UPDATE refused'); END",
        "CREATE TRIGGER period_snapshots_no_delete BEFORE DELETE ON period_snapshots BEGIN SELECT RAISE(ABORT, 'period_snapshots is immutable: DELETE refused'); END",
        "CREATE TRIGGER payouts_no_update BEFORE UPDATE ON payouts BEGIN SELECT RAISE(ABORT, 'payouts is immutable: UPDATE refused'); END",
        "CREATE TRIGGER payouts_no_delete BEFORE DELETE ON payouts BEGIN SELECT RAISE(ABORT, 'payouts is immutable: DELETE refused'); END",
        "CREATE TRIGGER dispute_messages_no_update BEFORE UPDATE ON dispute_messages BEGIN SELECT RAISE(ABORT, 'dispute_messages is immutable: UPDATE refused'); END",
        "CREATE TRIGGER dispute_messages_no_delete BEFORE DELETE ON dispute_messages BEGIN SELECT RAISE(ABORT, 'dispute_messages is immutable: DELETE refused'); END",
    ],
    'postgresql': [
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER period_closes_no_update BEFORE UPDATE ON period_closes FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE period_closes ENABLE ALWAYS TRIGGER period_closes_no_update',
        'CREATE TRIGGER period_closes_no_delete BEFORE DELETE ON period_closes FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE period_closes ENABLE ALWAYS TRIGGER period_closes_no_delete',
        'CREATE TRIGGER period_closes_no_truncate BEFORE TRUNCATE ON period_closes FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE period_closes ENABLE ALWAYS TRIGGER period_closes_no_truncate',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER period_snapshots_no_update BEFORE UPDATE ON period_snapshots FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE period_snapshots ENABLE ALWAYS TRIGGER period_snapshots_no_update',
        'CREATE TRIGGER period_snapshots_no_delete BEFORE DELETE ON period_snapshots FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE period_snapshots ENABLE ALWAYS TRIGGER period_snapshots_no_delete',
        'CREATE TRIGGER period_snapshots_no_truncate BEFORE TRUNCATE ON period_snapshots FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE period_snapshots ENABLE ALWAYS TRIGGER period_snapshots_no_truncate',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER payouts_no_update BEFORE UPDATE ON payouts FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE payouts ENABLE ALWAYS TRIGGER payouts_no_update',
        'CREATE TRIGGER payouts_no_delete BEFORE DELETE ON payouts FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE payouts ENABLE ALWAYS TRIGGER payouts_no_delete',
        'CREATE TRIGGER payouts_no_truncate BEFORE TRUNCATE ON payouts FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE payouts ENABLE ALWAYS TRIGGER payouts_no_truncate',
        "CREATE OR REPLACE FUNCTION doorstep_append_only() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = '23001';\nEND\n$$",
        'CREATE TRIGGER dispute_messages_no_update BEFORE UPDATE ON dispute_messages FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE dispute_messages ENABLE ALWAYS TRIGGER dispute_messages_no_update',
        'CREATE TRIGGER dispute_messages_no_delete BEFORE DELETE ON dispute_messages FOR EACH ROW EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE dispute_messages ENABLE ALWAYS TRIGGER dispute_messages_no_delete',
        'CREATE TRIGGER dispute_messages_no_truncate BEFORE TRUNCATE ON dispute_messages FOR EACH STATEMENT EXECUTE FUNCTION doorstep_append_only()',
        'ALTER TABLE dispute_messages ENABLE ALWAYS TRIGGER dispute_messages_no_truncate',
    ],
}
GUARDS_DROP = {
    'sqlite': [
        'DROP TRIGGER IF EXISTS period_closes_no_update',
        'DROP TRIGGER IF EXISTS period_closes_no_delete',
        'DROP TRIGGER IF EXISTS period_snapshots_no_update',
        'DROP TRIGGER IF EXISTS period_snapshots_no_delete',
        'DROP TRIGGER IF EXISTS payouts_no_update',
        'DROP TRIGGER IF EXISTS payouts_no_delete',
        'DROP TRIGGER IF EXISTS dispute_messages_no_update',
        'DROP TRIGGER IF EXISTS dispute_messages_no_delete',
    ],
    'postgresql': [
        'DROP TRIGGER IF EXISTS period_closes_no_update ON period_closes',
        'DROP TRIGGER IF EXISTS period_closes_no_delete ON period_closes',
        'DROP TRIGGER IF EXISTS period_closes_no_truncate ON period_closes',
        'DROP TRIGGER IF EXISTS period_snapshots_no_update ON period_snapshots',
        'DROP TRIGGER IF EXISTS period_snapshots_no_delete ON period_snapshots',
        'DROP TRIGGER IF EXISTS period_snapshots_no_truncate ON period_snapshots',
        'DROP TRIGGER IF EXISTS payouts_no_update ON payouts',
        'DROP TRIGGER IF EXISTS payouts_no_delete ON payouts',
        'DROP TRIGGER IF EXISTS payouts_no_truncate ON payouts',
        'DROP TRIGGER IF EXISTS dispute_messages_no_update ON dispute_messages',
        'DROP TRIGGER IF EXISTS dispute_messages_no_delete ON dispute_messages',
        'DROP TRIGGER IF EXISTS dispute_messages_no_truncate ON dispute_messages',
    ],
}


def upgrade():
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('period_closes',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('head_position', sa.BigInteger(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('tiers_version_id', sa.Integer(), nullable=True),
    sa.Column('beneficiaries', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_period_closes_closed_by_id_users')),
    sa.ForeignKeyConstraint(['tiers_version_id'], ['rate_versions.id'], name=op.f('fk_period_closes_tiers_version_id_rate_versions')),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_period_closes'))
    )
    op.create_table('payouts',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('carried', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['period'], ['period_closes.period'], name=op.f('fk_payouts_period_period_closes')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_payouts_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_payouts'))
    )
    op.create_table('period_snapshots',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('beneficiary_id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('personnel_number', sa.String(length=32), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('supervisor_login', sa.String(length=64), nullable=True),
    sa.Column('opening', sa.BigInteger(), nullable=False),
    sa.Column('accruals_earned', sa.BigInteger(), nullable=False),
    sa.Column('overrides_earned', sa.BigInteger(), nullable=False),
    sa.Column('bonuses', sa.BigInteger(), nullable=False),
    sa.Column('adjustments', sa.BigInteger(), nullable=False),
    sa.Column('clawbacks', sa.BigInteger(), nullable=False),
    sa.Column('payouts', sa.BigInteger(), nullable=False),
    sa.Column('net', sa.BigInteger(), nullable=False),
    sa.Column('pending', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['beneficiary_id'], ['users.id'], name=op.f('fk_period_snapshots_beneficiary_id_users')),
    sa.ForeignKeyConstraint(['period'], ['period_closes.period'], name=op.f('fk_period_snapshots_period_period_closes')),
    sa.PrimaryKeyConstraint('period', 'beneficiary_id', name=op.f('pk_period_snapshots'))
    )
    with op.batch_alter_table('period_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_period_snapshots_beneficiary_id', ['beneficiary_id'], unique=False)

    op.create_table('disputes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('entry_position', sa.BigInteger(), nullable=True),
    sa.Column('contract_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'resolved', 'rejected')", name=op.f('ck_disputes_status_known')),
    sa.ForeignKeyConstraint(['agent_id'], ['users.id'], name=op.f('fk_disputes_agent_id_users')),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_disputes_contract_id_contracts')),
    sa.ForeignKeyConstraint(['entry_position'], ['ledger_entries.position'], name=op.f('fk_disputes_entry_position_ledger_entries')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_disputes_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index('ix_disputes_agent_id', ['agent_id'], unique=False)
        batch_op.create_index('ix_disputes_status', ['status'], unique=False)

    op.create_table('adjustments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('beneficiary_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('corrects_position', sa.BigInteger(), nullable=True),
    sa.Column('dispute_id', sa.Integer(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author_label', sa.String(length=120), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('entry_position', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('proposed', 'approved', 'rejected')", name=op.f('ck_adjustments_status_known')),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_adjustments_amount_not_zero')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_adjustments_author_id_users')),
    sa.ForeignKeyConstraint(['beneficiary_id'], ['users.id'], name=op.f('fk_adjustments_beneficiary_id_users')),
    sa.ForeignKeyConstraint(['corrects_position'], ['ledger_entries.position'], name=op.f('fk_adjustments_corrects_position_ledger_entries')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_adjustments_decided_by_id_users')),
    sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_adjustments_dispute_id_disputes')),
    sa.ForeignKeyConstraint(['entry_position'], ['ledger_entries.position'], name=op.f('fk_adjustments_entry_position_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustments'))
    )
    with op.batch_alter_table('adjustments', schema=None) as batch_op:
        batch_op.create_index('ix_adjustments_beneficiary_id', ['beneficiary_id'], unique=False)
        batch_op.create_index('ix_adjustments_status', ['status'], unique=False)

    op.create_table('dispute_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dispute_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author_label', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_dispute_messages_author_id_users')),
    sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_dispute_messages_dispute_id_disputes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispute_messages'))
    )
    with op.batch_alter_table('dispute_messages', schema=None) as batch_op:
        batch_op.create_index('ix_dispute_messages_dispute_id', ['dispute_id'], unique=False)

    # ### end Alembic commands ###
    for statement in GUARDS[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade():
    for statement in GUARDS_DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('dispute_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_dispute_messages_dispute_id')

    op.drop_table('dispute_messages')
    with op.batch_alter_table('adjustments', schema=None) as batch_op:
        batch_op.drop_index('ix_adjustments_status')
        batch_op.drop_index('ix_adjustments_beneficiary_id')

    op.drop_table('adjustments')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index('ix_disputes_status')
        batch_op.drop_index('ix_disputes_agent_id')

    op.drop_table('disputes')
    with op.batch_alter_table('period_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_period_snapshots_beneficiary_id')

    op.drop_table('period_snapshots')
    op.drop_table('payouts')
    op.drop_table('period_closes')
    # ### end Alembic commands ###
