using System.Globalization;
using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Core.Callers;
using Broker.Host.Roles;
using Broker.Validation.MailServers;
using Broker.Portal;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Host.Cli;

/// <summary>
/// Administration from the command line, against the same store the server uses. In the
/// embedded default the server must be running (the CLI talks to its Garnet on loopback).
/// </summary>
internal static partial class CliCommands
{
    public const string Usage = """
        usage:
          broker [serve] [--Broker:Roles=gateway,validation] [--Redis:Configuration=host:port]
          broker apikey create NAME            create a caller API key for a mail server (shown once)
          broker apikey list | apikey delete NAME
          broker app-password issue --user U --name "Thunderbird" --scopes imap,submission [--lifetime 30d]
          broker app-password list --user U
          broker app-password renew --user U --id ID [--lifetime 30d]
          broker app-password revoke --user U --id ID | app-password revoke-all --user U
          broker app-password allow-networks --user U --id ID --networks 10.0.0.0/8,2001:db8::/32   (--networks=: anywhere)
          broker app-password allow-countries --user U --id ID --countries DE,FR   (--countries=: any; needs Broker:GeoIp:CountryDatabase)
          broker app-password approve-network --user U --id ID --network 203.0.113.0/24
          broker user disable U | user enable U
          broker user new-network-approval U on|off|default
          broker user create U | user create-admin U   portal account + one-time enrollment link
          broker user enrollment-link U                 new enrollment link (forgotten password)
          broker pepper status                          app passwords by the pepper they are keyed under (rotation)
        flags take their value after a space or after = (--name="Work: laptop"); each at most once;
        a value that starts with -- only after =. Settings are always --Section:Key=value.
        lifetimes: 90m, 12h, 30d or a TimeSpan (1.00:00:00); a bare number has no unit and is refused.
        exit codes: 0 done, 1 refused (see the message), 2 bad command line, 3 bad configuration,
                    4 credential store or portal database unreachable, 70 internal error, 130 interrupted
        """;

    /// <summary>
    /// One command: its positional arguments in order, its flags (no others are accepted), and what
    /// runs it, given the parsed flags and arguments (already checked against the first two).
    /// </summary>
    private sealed record Command(string[] Arguments, string[] Flags, Func<ServiceProvider, Dictionary<string, string>, List<string>, CancellationToken, Task<int>> Run);

    /// <summary>Every command, by its two words: the one list for parsing, checking and running.</summary>
    private static readonly Dictionary<string, Command> Commands = new(StringComparer.Ordinal)
    {
        ["apikey create"] = new(["NAME"], [], (s, _, p, ct) => ApiKeyCreate(s, p[0], ct)),
        ["apikey list"] = new([], [], (s, _, _, ct) => ApiKeyList(s, ct)),
        ["apikey delete"] = new(["NAME"], [], (s, _, p, ct) => ApiKeyDelete(s, p[0], ct)),
        ["app-password issue"] = new([], ["user", "name", "scopes", "lifetime"], (s, f, _, ct) => Issue(s, f, ct)),
        ["app-password list"] = new([], ["user"], (s, f, _, ct) => List(s, Flag(f, "user"), ct)),
        ["app-password renew"] = new([], ["user", "id", "lifetime"], (s, f, _, ct) => Renew(s, f, ct)),
        ["app-password revoke"] = new([], ["user", "id"], (s, f, _, ct) => Revoke(s, Flag(f, "user"), Id(f), ct)),
        ["app-password revoke-all"] = new([], ["user"], async (s, f, _, ct) => Print($"revoked {await s.GetRequiredService<AppPasswordService>().RevokeAllAsync(Flag(f, "user"), ct)} app password(s)")),
        ["app-password allow-networks"] = new([], ["user", "id", "networks"], (s, f, _, ct) => AllowNetworks(s, f, ct)),
        ["app-password allow-countries"] = new([], ["user", "id", "countries"], (s, f, _, ct) => AllowCountries(s, f, ct)),
        ["app-password approve-network"] = new([], ["user", "id", "network"], (s, f, _, ct) => ApproveNetwork(s, f, ct)),
        ["user disable"] = new(["USER"], [], (s, _, p, ct) => SetDisabled(s, p[0], true, ct)),
        ["user enable"] = new(["USER"], [], (s, _, p, ct) => SetDisabled(s, p[0], false, ct)),
        ["user new-network-approval"] = new(["USER", "on|off|default"], [], (s, _, p, ct) => NewNetworkApproval(s, p[0], p[1], ct)),
        ["user create"] = new(["USER"], [], (s, _, p, ct) => UserCreate(s, p[0], false, ct)),
        ["user create-admin"] = new(["USER"], [], (s, _, p, ct) => UserCreate(s, p[0], true, ct)),
        ["user enrollment-link"] = new(["USER"], [], (s, _, p, ct) => EnrollmentLink(s, p[0], ct)),
        ["pepper status"] = new([], [], (s, _, _, ct) => PepperStatus(s, ct)),
    };

    /// <summary>How long the CLI waits to connect to the store unless <c>Redis:Configuration</c> says (the server's lower bound).</summary>
    private const int CliConnectTimeoutMs = 2000;

    [System.Text.RegularExpressions.GeneratedRegex(@"(^|,)\s*connectTimeout\s*=", System.Text.RegularExpressions.RegexOptions.IgnoreCase)]
    private static partial System.Text.RegularExpressions.Regex ConnectTimeoutOption();

    /// <summary>A word that asks for the usage text instead of a command.</summary>
    internal static bool IsHelp(string word) => word is "help" or "--help" or "-h";

    /// <summary>Exit code of a command line that cannot be run as written.</summary>
    private const int UsageExit = 2;

    public static async Task<int> RunAsync(string[] args, IConfiguration config, CancellationToken ct)
    {
        if (IsHelp(args[0]) || (args.Length > 1 && IsHelp(args[1])))
        {
            Console.WriteLine(Usage);
            return 0;
        }

        var name = string.Join(' ', args.Take(2));
        Command? command;
        Dictionary<string, string> flags;
        List<string> positional;
        try
        {
            if (!Commands.TryGetValue(name, out command))
            {
                throw new UsageException($"unknown command '{name}'.");
            }

            (flags, positional) = ParseArguments(args.Skip(2));
            CheckShape(name, command, flags, positional);
        }
        catch (HelpRequested)
        {
            Console.WriteLine(Usage);
            return 0;
        }
        catch (UsageException ex)
        {
            return Fail($"{ex.Message}\n{Usage}", UsageExit);
        }

        ServiceProvider? services = null;
        try
        {
            services = BuildServices(config);
            return await command.Run(services, flags, positional, ct);
        }
        catch (UsageException ex)
        {
            return Fail($"{ex.Message}\n{Usage}", UsageExit);
        }
        catch (AppPasswordException ex)
        {
            return Fail(ex.Message, 1);
        }
        catch (Broker.Portal.Accounts.AccountException ex)
        {
            return Fail(ex.Message, 1);
        }
        catch (OptionsValidationException ex)
        {
            return Fail(string.Join(Environment.NewLine, ex.Failures.Distinct()), 3);
        }
        catch (InvalidOperationException ex) when (ex.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
        {
            // A setting that is not of its type (--Redis:OperationTimeout=soon): the binder's message names it.
            return Fail(ex.Message, 3);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Fail("interrupted before the command finished; if it was making a change, check whether it was made.", 130);
        }
        catch (Exception ex) when (ex is StoreNotConnectedException or StoreUnavailableException or RedisException or TimeoutException)
        {
            return Fail($"cannot reach the credential store {StoreDescription(config)}: {StoreFailure(ex)}. {StoreHint(config)}", 4);
        }
        catch (Exception ex) when (IsDatabaseFailure(ex))
        {
            return Fail($"cannot use the portal database (Broker:Portal:DatabaseProvider, Broker:Portal:ConnectionString): {DatabaseMessage(ex)}", 4);
        }
        catch (Exception ex)
        {
            // Not foreseen above: still a message and an exit code, never an unhandled exception.
            return Fail($"unexpected {ex.GetType().Name}: {ex.Message} (this is a bug in broker; please report it with the command line)", 70);
        }
        finally
        {
            // Interrupted: exit now. Disposed, the store connection queues QUIT behind the commands
            // the store has not answered and waits for them, up to the operation timeout.
            if (services is not null && !ct.IsCancellationRequested)
            {
                await services.DisposeAsync();
            }
        }
    }

    /// <summary>Flags and arguments the command does not take, or too few or too many arguments: refused, never ignored.</summary>
    private static void CheckShape(string name, Command shape, Dictionary<string, string> flags, List<string> positional)
    {
        foreach (var flag in flags.Keys)
        {
            if (!shape.Flags.Contains(flag, StringComparer.OrdinalIgnoreCase))
            {
                var guess = shape.Flags.FirstOrDefault(f => IsNear(flag, f)) is { } g ? $" Did you mean --{g}?" : string.Empty;
                throw new UsageException($"unknown flag --{flag}: '{name}' takes {Describe(shape)}.{guess}");
            }
        }

        if (positional.Count > shape.Arguments.Length)
        {
            var extra = positional[shape.Arguments.Length];
            throw new UsageException($"unexpected argument '{extra}': '{name}' takes {Describe(shape)} (quote a value that has spaces).");
        }

        if (positional.Count < shape.Arguments.Length)
        {
            throw new UsageException($"{shape.Arguments[positional.Count]} is required.");
        }
    }

    private static string Describe(Command shape) =>
        shape.Arguments.Length + shape.Flags.Length == 0 ? "no arguments" : string.Join(" ", shape.Arguments.Concat(shape.Flags.Select(f => "--" + f)));

    /// <summary>A typo of a known flag: one is a prefix of the other, or at most two edits apart.</summary>
    private static bool IsNear(string typed, string known)
    {
        typed = typed.ToLowerInvariant();
        if (known.StartsWith(typed, StringComparison.Ordinal) || typed.StartsWith(known, StringComparison.Ordinal))
        {
            return true;
        }

        var d = new int[typed.Length + 1, known.Length + 1];
        for (var i = 0; i <= typed.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= known.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= typed.Length; i++)
        {
            for (var j = 1; j <= known.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (typed[i - 1] == known[j - 1] ? 0 : 1));
            }
        }

        return d[typed.Length, known.Length] <= 2;
    }

    /// <summary>
    /// Where the CLI looked for the store. Without Redis:Configuration that is the running server's
    /// embedded Garnet; with it, the connection string without its password.
    /// </summary>
    private static string StoreDescription(IConfiguration config)
    {
        var configured = config["Redis:Configuration"];
        if (string.IsNullOrWhiteSpace(configured))
        {
            var port = config.GetSection(BrokerHostOptions.SectionName).Get<BrokerHostOptions>()?.EmbeddedRedisPort ?? new BrokerHostOptions().EmbeddedRedisPort;
            return $"at 127.0.0.1:{port} (the embedded Garnet of a running `broker`, Broker:EmbeddedRedisPort)";
        }

        try
        {
            return $"at {ConfigurationOptions.Parse(configured).ToString(includePassword: false)} (Redis:Configuration)";
        }
        catch (ArgumentException)
        {
            return "(Redis:Configuration)";
        }
    }

    /// <summary>
    /// Why a store call failed, in a few words: StackExchange.Redis's own messages run to a
    /// paragraph of connection diagnostics that say nothing more to a person at a terminal.
    /// </summary>
    private static string StoreFailure(Exception ex) => ex switch
    {
        RedisConnectionException c => $"{c.FailureType}",
        RedisTimeoutException or TimeoutException => "no answer in time (Redis:OperationTimeout)",
        _ => ex.Message.Split('\n')[0].TrimEnd('.', '\r'),
    };

    private static string StoreHint(IConfiguration config) =>
        string.IsNullOrWhiteSpace(config["Redis:Configuration"])
            ? "Is `broker` running, with the same Broker:EmbeddedRedisPort? Without Redis:Configuration the command line uses the server's embedded store."
            : "Is Redis up, and is Redis:Configuration right?";

    /// <summary>The portal database (SQLite or PostgreSQL) failed: not reachable, not writable, not a database.</summary>
    internal static bool IsDatabaseFailure(Exception ex) =>
        ex is System.Data.Common.DbException or Microsoft.EntityFrameworkCore.DbUpdateException
        || ex.InnerException is System.Data.Common.DbException;

    internal static string DatabaseMessage(Exception ex) =>
        (ex as System.Data.Common.DbException ?? ex.InnerException as System.Data.Common.DbException ?? ex).Message;

    private static ServiceProvider BuildServices(IConfiguration config)
    {
        var options = config.GetSection(BrokerHostOptions.SectionName).Get<BrokerHostOptions>() ?? new BrokerHostOptions();
        // A person is waiting, not a mail server: allow a cold connection more time than a login gets.
        var overrides = new Dictionary<string, string?> { ["Redis:OperationTimeout"] = config["Redis:OperationTimeout"] ?? "00:00:10" };
        // ...but not to connect: StackExchange.Redis waits out its whole connect timeout (5 s by
        // default, at times twice that) even for a store that refuses the connection.
        if (config["Redis:Configuration"] is { } configured && !string.IsNullOrWhiteSpace(configured) && !ConnectTimeoutOption().IsMatch(configured))
        {
            overrides["Redis:Configuration"] = $"{configured},connectTimeout={CliConnectTimeoutMs}";
        }

        if (string.IsNullOrWhiteSpace(config["Redis:Configuration"]))
        {
            // The running embedded host owns Garnet; reach it on loopback and reuse its pepper file.
            overrides["Redis:Configuration"] = $"127.0.0.1:{options.EmbeddedRedisPort},connectTimeout={CliConnectTimeoutMs}";
            if (string.IsNullOrWhiteSpace(config["Broker:Pepper:Value"]) && string.IsNullOrWhiteSpace(config["Broker:Pepper:File"]))
            {
                overrides["Broker:Pepper:File"] = options.EmbeddedPepperFile;
            }
        }

        if (BrokerHost.DefaultPortalOrigin(config, options) is { } origin)
        {
            overrides["Broker:Portal:PublicOrigin"] = origin;
        }

        var merged = new ConfigurationBuilder().AddConfiguration(config).AddInMemoryCollection(overrides).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(merged);
        // Log lines go to standard error: standard output is the command's answer (a secret, a list), for people and scripts alike.
        services.AddLogging(l => l.AddConfiguration(merged.GetSection("Logging")).AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        services.AddBrokerCore();
        // Revocations from the command line end open IMAP sessions like the portal's do.
        services.AddBrokerDoveadmKick();
        // Portal accounts (user create) use the same database settings as the portal role.
        services.AddBrokerPortal();
        // A person is waiting: a store that cannot be connected to is said at once, not after the
        // command waited out its operation timeout queued behind a connection that never came.
        var connect = services.Last(d => d.ServiceType == typeof(IConnectionMultiplexer)).ImplementationFactory!;
        services.Replace(ServiceDescriptor.Singleton<IConnectionMultiplexer>(sp =>
        {
            var redis = (IConnectionMultiplexer)connect(sp);
            if (redis.IsConnected)
            {
                return redis;
            }

            var waited = ConfigurationOptions.Parse(redis.Configuration).ConnectTimeout;
            redis.Dispose();
            throw new StoreNotConnectedException($"no connection within {waited / 1000.0:0.#} s{(string.IsNullOrWhiteSpace(config["Redis:Configuration"]) ? string.Empty : " (connectTimeout in Redis:Configuration)")}");
        }));
        return services.BuildServiceProvider();
    }

    private static async Task<int> PepperStatus(IServiceProvider sp, CancellationToken ct)
    {
        var status = await sp.GetRequiredService<AppPasswordService>().PepperStatusAsync(ct);
        var rotating = sp.GetRequiredService<AppPasswordHasher>().Rotating;
        Console.WriteLine($"current pepper {status.PepperId}: {status.Current} app password(s)");
        Console.WriteLine($"under another pepper: {status.Other} (re-keyed under the current one at their next login)");
        Console.WriteLine($"issued before pepper ids were stored and not used since: {status.Unmarked}");
        if (rotating)
        {
            Console.WriteLine(status.Other + status.Unmarked == 0
                ? "nothing is left under the other pepper: Broker:Pepper:RotationFile (or RotationValue) can be removed."
                : "removing Broker:Pepper:RotationFile (or RotationValue) now stops those not under the current pepper from working.");
        }

        return 0;
    }

    private static async Task<int> ApiKeyCreate(IServiceProvider sp, string name, CancellationToken ct)
    {
        string key;
        try
        {
            key = await sp.GetRequiredService<CallerKeyStore>().CreateAsync(name, ct);
        }
        catch (CallerKeyException ex)
        {
            return Fail(ex.Message, 1);
        }

        Console.WriteLine($"caller: {name.Trim()}");
        Console.WriteLine($"api key (shown once): {key}");
        return 0;
    }

    private static async Task<int> ApiKeyList(IServiceProvider sp, CancellationToken ct)
    {
        foreach (var (name, prefix) in await sp.GetRequiredService<CallerKeyStore>().ListAsync(ct))
        {
            Console.WriteLine($"{name}\tsha256:{prefix}…");
        }

        return 0;
    }

    private static async Task<int> ApiKeyDelete(IServiceProvider sp, string name, CancellationToken ct)
    {
        var removed = await sp.GetRequiredService<CallerKeyStore>().DeleteAsync(name, ct);
        return removed > 0 ? Print($"deleted {removed} key(s) of {name}") : Fail($"no caller named '{name}'", 1);
    }

    private static async Task<int> Issue(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        var issued = await sp.GetRequiredService<AppPasswordService>().IssueAsync(
            Flag(flags, "user"), Flag(flags, "name"), Flag(flags, "scopes").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), OptionalLifetime(flags), ct);
        var ap = issued.AppPassword;
        Console.WriteLine($"id:       {ap.Id}");
        Console.WriteLine($"user:     {ap.Owner}");
        Console.WriteLine($"scopes:   {string.Join(",", ap.Scopes)}");
        Console.WriteLine($"expires:  {ap.Expires:u}");
        Console.WriteLine($"password: {issued.Secret}");
        return 0;
    }

    private static async Task<int> List(IServiceProvider sp, string user, CancellationToken ct)
    {
        // Read first: a refused user name or a dead store must not leave a header that looks like "none".
        var list = await sp.GetRequiredService<AppPasswordService>().ListAsync(user, ct);
        Console.WriteLine("id\tname\tscopes\tcreated\texpires\tstatus\tlast used");
        foreach (var ap in list)
        {
            var status = ap.Revoked is not null ? "revoked" : ap.Expires <= DateTimeOffset.UtcNow ? "expired" : "active";
            // The client id and protocol come from mail clients and servers: shown, never interpreted by the terminal.
            var last = ap.LastUsed is { } lu ? $"{lu.At:u} {Printable(lu.RemoteIp)} {Printable(lu.Protocol)} {Printable(lu.ClientId)}" : "never";
            Console.WriteLine($"{ap.Id}\t{ap.Name}\t{string.Join(",", ap.Scopes)}\t{ap.Created:u}\t{ap.Expires:u}\t{status}\t{last}");
            if (ap.Networks.Count + ap.PendingNetworks.Count + ap.AllowedNetworks.Count > 0)
            {
                Console.WriteLine($"\tnetworks: {string.Join(", ", ap.Networks)}; awaiting approval: {string.Join(", ", ap.PendingNetworks)}; allowed only: {string.Join(", ", ap.AllowedNetworks)}");
            }

            if (ap.AllowedCountries.Count > 0)
            {
                Console.WriteLine($"\tallowed countries: {string.Join(", ", ap.AllowedCountries)}{(ap.AllowedNetworks.Count > 0 ? " (or the allowed networks)" : string.Empty)}");
            }

            if (ap.Clients.Count > 0)
            {
                Console.WriteLine($"\tclients: {Printable(string.Join(" | ", ap.Clients))}");
            }
        }

        return 0;
    }

    private static async Task<int> Renew(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        var ap = await sp.GetRequiredService<AppPasswordService>().RenewAsync(Flag(flags, "user"), Id(flags), OptionalLifetime(flags), ct);
        return Print($"renewed {ap.Id} until {ap.Expires:u}");
    }

    private static async Task<int> ApproveNetwork(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        var (user, id, typed) = (Flag(flags, "user"), Id(flags), Flag(flags, "network"));
        // Pending networks are kept normalised (203.0.113.0/24, 2001:db8:1::/48): match what was typed to that form.
        var network = NormalizeNetwork(typed)
            ?? throw new UsageException($"'{typed}' is not a network: write it as listed under \"awaiting approval\" (address/prefix, e.g. 203.0.113.0/24).");
        var store = sp.GetRequiredService<AppPasswordService>();
        switch (await store.ApproveNetworkAsync(user, id, network, ct))
        {
            case NetworkApproval.Approved:
                return Print($"approved {network} for {id}");
            case NetworkApproval.UserDisabled:
                return Fail($"{user} is disabled: nothing was approved", 1);
            default:
                var ap = await store.GetAsync(user, id, ct);
                return Fail(ap is null ? $"{user} has no app password with id {id}"
                    : ap.PendingNetworks.Count == 0 ? $"nothing pending for {network} on {id} (no network awaits approval)"
                    : $"nothing pending for {network} on {id} (awaiting approval: {string.Join(", ", ap.PendingNetworks)})", 1);
        }
    }

    /// <summary>
    /// <c>address/prefix</c> in the form pending networks are kept in (masked, lower-case IPv6), or
    /// null. Any prefix length: a pending network has the configured one (Broker:Throttling:IPv6Prefix).
    /// </summary>
    private static string? NormalizeNetwork(string typed)
    {
        var v = typed.Trim();
        var slash = v.IndexOf('/', StringComparison.Ordinal);
        return slash > 0
            && System.Net.IPAddress.TryParse(v[..slash], out var ip)
            && int.TryParse(v[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix)
            && prefix <= (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
                ? Broker.Core.Throttling.SourceNetwork.Of(v[..slash], prefix, prefix)
                : null;
    }

    private static async Task<int> Revoke(IServiceProvider sp, string user, string id, CancellationToken ct) =>
        await sp.GetRequiredService<AppPasswordService>().RevokeAsync(user, id, ct)
            ? Print($"revoked {id}")
            : Fail($"{user} has no app password with id {id}", 1);

    private static async Task<int> SetDisabled(IServiceProvider sp, string user, bool disabled, CancellationToken ct)
    {
        var revoked = await sp.GetRequiredService<AppPasswordService>().SetDisabledAsync(user, disabled, ct);
        // Said before the portal step, so that a portal database failure does not hide that this part is done.
        Console.WriteLine(disabled ? $"disabled {user} for mail login and revoked {revoked} app password(s)" : $"enabled {user} for mail login");
        // The portal account too, so a disabled person cannot sign in and mint new app passwords.
        // Not in a database made here, though: there may be no portal at all, or its database is elsewhere.
        var missing = MissingPortalDatabase(sp);
        var portal = missing is null && await Broker.Portal.Accounts.PortalCommands.SetPortalDisabledAsync(sp, user, disabled, ct);
        Console.WriteLine(portal ? $"{(disabled ? "disabled" : "enabled")} the portal account too"
            : missing is null ? "no portal account"
            : $"no portal database at {missing} (Broker:DataDirectory): no portal account was changed");
        if (disabled && revoked == 0 && !portal)
        {
            // Users live in the mail directory, not here: a mistyped name is disabled as readily as the right one.
            Console.Error.WriteLine($"warning: '{user}' had no app passwords and {(missing is null ? "has no portal account" : "no portal database was found")}: is the name right?");
        }

        return 0;
    }

    /// <summary>
    /// The portal's SQLite database at its default place in the data directory, when it is not there;
    /// null when it is, or another database is configured. The command line never creates it: run
    /// from another working directory it made a second, empty database (and a data directory open
    /// to other users) beside the server's, and the accounts and links it made there were not the
    /// portal's.
    /// </summary>
    private static string? MissingPortalDatabase(IServiceProvider sp)
    {
        var portal = sp.GetRequiredService<IOptions<PortalOptions>>().Value;
        if (portal.DatabaseProvider == "Postgres" || !string.IsNullOrWhiteSpace(portal.ConnectionString))
        {
            return null;
        }

        var path = Path.Combine(Path.GetFullPath(sp.GetRequiredService<IConfiguration>()["Broker:DataDirectory"] ?? "data"), "portal.db");
        return File.Exists(path) ? null : path;
    }

    /// <summary>Refuses a portal-account command when <see cref="MissingPortalDatabase"/> finds none; null to go on.</summary>
    private static int? RefuseWithoutPortalDatabase(IServiceProvider sp) =>
        MissingPortalDatabase(sp) is { } missing
            ? Fail($"no portal database at {missing}: the command line does not create one (the portal does, at its first start). "
                + "Run the command in the server's working directory, or give it the server's data directory: --Broker:DataDirectory=PATH.", 3)
            : null;

    private static async Task<int> UserCreate(IServiceProvider sp, string user, bool admin, CancellationToken ct)
    {
        if (RefuseWithoutPortalDatabase(sp) is { } refused)
        {
            return refused;
        }

        var (name, link, expires) = await Broker.Portal.Accounts.PortalCommands.CreateUserAsync(sp, user, admin, ct);
        Console.WriteLine($"created {(admin ? "administrator" : "user")} {name}");
        Console.WriteLine($"one-time enrollment link (valid until {expires:u}): {link}");
        return 0;
    }

    private static async Task<int> EnrollmentLink(IServiceProvider sp, string user, CancellationToken ct) =>
        RefuseWithoutPortalDatabase(sp)
        ?? (await Broker.Portal.Accounts.PortalCommands.NewEnrollmentLinkAsync(sp, user, ct) is { } link
            ? Print($"one-time enrollment link: {link}")
            : Fail($"no portal account named '{user}'", 1));

    private static async Task<int> AllowNetworks(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        // Required, like the countries' flag: a forgotten (or mistyped) --networks must not silently lift a limit.
        if (!flags.TryGetValue("networks", out var n))
        {
            throw new UsageException("--networks is required (--networks= to remove the limit).");
        }

        var networks = n.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ap = await sp.GetRequiredService<AppPasswordService>().SetAllowedNetworksAsync(Flag(flags, "user"), Id(flags), networks, ct);
        return Print(ap.AllowedNetworks.Count == 0 ? $"{ap.Id} may be used from anywhere" : $"{ap.Id} may be used only from {string.Join(", ", ap.AllowedNetworks)}");
    }

    private static async Task<int> AllowCountries(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        // Required, unlike the networks' flag: a forgotten --countries must not silently lift a limit.
        if (!flags.TryGetValue("countries", out var c))
        {
            throw new UsageException("--countries is required (--countries= to remove the limit).");
        }

        var countries = c.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ap = await sp.GetRequiredService<AppPasswordService>().SetAllowedCountriesAsync(Flag(flags, "user"), Id(flags), countries, ct);
        var networks = ap.AllowedNetworks.Count == 0 ? string.Empty : $" or from {string.Join(", ", ap.AllowedNetworks)}";
        return Print(ap.AllowedCountries.Count == 0
            ? $"{ap.Id} is not limited by country{(networks.Length == 0 ? string.Empty : $" (still only from {string.Join(", ", ap.AllowedNetworks)})")}"
            : $"{ap.Id} may be used only from {string.Join(", ", ap.AllowedCountries)}{networks}");
    }

    private static async Task<int> NewNetworkApproval(IServiceProvider sp, string user, string mode, CancellationToken ct)
    {
        bool? required = mode switch
        {
            "on" => true,
            "off" => false,
            "default" => null,
            _ => throw new UsageException($"'{mode}' is not on, off or default."),
        };
        var store = sp.GetRequiredService<AppPasswordService>();
        await store.SetNewNetworkApprovalAsync(user, required, ct);
        return Print($"new-network approval for {user}: {(await store.RequiresNewNetworkApprovalAsync(user, ct) ? "required" : "not required")}{(required is null ? " (organisation default)" : string.Empty)}");
    }

    internal static TimeSpan ParseLifetime(string value) =>
        LifetimeText.TryParse(value, out var lifetime, out var error) ? lifetime : throw new UsageException(error);

    private static TimeSpan? OptionalLifetime(Dictionary<string, string> flags) =>
        flags.TryGetValue("lifetime", out var l) ? ParseLifetime(l) : null;

    /// <summary>
    /// A <c>--Section:Key=value</c> setting, for configuration rather than the command: the colon
    /// must be in the name. A flag whose value holds one (<c>--networks=2001:db8::/32</c>,
    /// <c>--name="Work: laptop"</c>) is a flag; taken for a setting, it would silently go missing.
    /// </summary>
    internal static bool IsSetting(string arg) =>
        arg.StartsWith("--", StringComparison.Ordinal)
        && arg.AsSpan(0, arg.IndexOf('=', StringComparison.Ordinal) is >= 0 and var eq ? eq : arg.Length).Contains(':');

    /// <summary>
    /// Splits what follows the command into <c>--flag value</c> / <c>--flag=value</c> pairs and
    /// positional arguments. A flag given twice, or without a value, is refused; so is a value that
    /// starts with <c>--</c> unless written after <c>=</c>, so a forgotten value never swallows
    /// the next flag.
    /// </summary>
    internal static (Dictionary<string, string> Flags, List<string> Positional) ParseArguments(IEnumerable<string> tokens)
    {
        var flags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var positional = new List<string>();
        using var e = tokens.GetEnumerator();
        while (e.MoveNext())
        {
            var token = e.Current;
            if (!token.StartsWith("--", StringComparison.Ordinal))
            {
                positional.Add(token);
                continue;
            }

            // --Section:Key=value settings belong to configuration, not to the command.
            if (IsSetting(token))
            {
                continue;
            }

            if (token == "--help")
            {
                throw new HelpRequested();
            }

            var name = token[2..];
            string value;
            var eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq == 0 || name.Length == 0)
            {
                throw new UsageException($"'{token}' is not a flag.");
            }

            if (eq > 0)
            {
                (name, value) = (name[..eq], name[(eq + 1)..]);
            }
            else if (e.MoveNext() && !e.Current.StartsWith("--", StringComparison.Ordinal))
            {
                value = e.Current;
            }
            else
            {
                throw new UsageException($"--{name} needs a value (--{name} VALUE, or --{name}=VALUE for one that starts with --).");
            }

            if (!flags.TryAdd(name, value))
            {
                throw new UsageException($"--{name} is given more than once.");
            }
        }

        return (flags, positional);
    }

    private static string Flag(Dictionary<string, string> flags, string name) =>
        flags.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v : throw new UsageException($"--{name} is required.");

    /// <summary>An app password id as copied from a listing (surrounding spaces dropped).</summary>
    private static string Id(Dictionary<string, string> flags) => Flag(flags, "id").Trim();

    private static int Print(string message)
    {
        Console.WriteLine(message);
        return 0;
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"error: {Printable(message)}");
        return code;
    }

    /// <summary>
    /// Control characters (an escape sequence in a typed or stored value) written as \uXXXX, so
    /// that they are visible and cannot rewrite the terminal; line breaks of the message itself stay.
    /// </summary>
    internal static string Printable(string? text)
    {
        if (string.IsNullOrEmpty(text) || !text.Any(c => char.IsControl(c) && c != '\n'))
        {
            return text ?? string.Empty;
        }

        var sb = new System.Text.StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            if (char.IsControl(c) && c != '\n')
            {
                sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    private sealed class UsageException(string message) : Exception(message);

    /// <summary>The credential store could not be connected to within the connect timeout.</summary>
    private sealed class StoreNotConnectedException(string message) : Exception(message);

    private sealed class HelpRequested : Exception;
}
