namespace Broker.Portal.Data;

/// <summary>
/// The database-side guard that makes the audit trail append-only, per provider. One text for the
/// Initial migrations and for <see cref="PortalDatabaseInitializer.MakeSecurityEventsAppendOnlyAsync"/>
/// (databases baselined from a release before migrations), which must create exactly the same.
/// Idempotent: only what is missing is created. A later change belongs in a new migration with its
/// own SQL, not here.
/// </summary>
internal static class SecurityEventsAppendOnlySql
{
    /// <summary>Triggers that abort UPDATE and DELETE of a security event.</summary>
    public static readonly string[] Sqlite =
    [
        """
        CREATE TRIGGER IF NOT EXISTS "SecurityEvents_NoUpdate" BEFORE UPDATE ON "SecurityEvents"
        BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
        """,
        """
        CREATE TRIGGER IF NOT EXISTS "SecurityEvents_NoDelete" BEFORE DELETE ON "SecurityEvents"
        BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
        """,
    ];

    /// <summary>
    /// A trigger function that raises on UPDATE, DELETE and TRUNCATE. One DO block (one transaction)
    /// under an advisory lock, so portal instances starting together do not race; a portal running
    /// as a role without DDL rights (see the admin guide) starts fine once the owner has created them.
    /// </summary>
    public static readonly string[] Postgres =
    [
        """
        DO $do$
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('broker.portal.SecurityEvents_AppendOnly'));
            IF to_regprocedure('"SecurityEvents_AppendOnly"()') IS NULL THEN
                CREATE FUNCTION "SecurityEvents_AppendOnly"() RETURNS trigger LANGUAGE plpgsql AS $fn$
                BEGIN
                    RAISE EXCEPTION 'security events are append-only' USING ERRCODE = 'insufficient_privilege';
                END
                $fn$;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"SecurityEvents"'::regclass AND tgname = 'SecurityEvents_NoUpdateOrDelete') THEN
                CREATE TRIGGER "SecurityEvents_NoUpdateOrDelete" BEFORE UPDATE OR DELETE ON "SecurityEvents"
                    FOR EACH ROW EXECUTE FUNCTION "SecurityEvents_AppendOnly"();
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"SecurityEvents"'::regclass AND tgname = 'SecurityEvents_NoTruncate') THEN
                CREATE TRIGGER "SecurityEvents_NoTruncate" BEFORE TRUNCATE ON "SecurityEvents"
                    FOR EACH STATEMENT EXECUTE FUNCTION "SecurityEvents_AppendOnly"();
            END IF;
        END
        $do$;
        """,
    ];
}
