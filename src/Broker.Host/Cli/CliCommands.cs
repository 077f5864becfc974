using System.Globalization;
using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Core.Callers;
using Broker.Host.Roles;
using Broker.Validation.MailServers;
using Broker.Portal;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Host.Cli;

/// <summary>
/// Administration from the command line, against the same store the server uses. In the
/// embedded default the server must be running (the CLI talks to its Garnet on loopback).
/// </summary>
internal static class CliCommands
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
        lifetimes: 90m, 12h, 30d or a TimeSpan (1.00:00:00)
        """;

    public static async Task<int> RunAsync(string[] args, IConfiguration config, CancellationToken ct)
    {
        if (args[0] is "help" or "--help" or "-h")
        {
            Console.WriteLine(Usage);
            return 0;
        }

        var flags = ParseFlags(args.Skip(2));
        var positional = args.Skip(2).Where(a => !a.StartsWith("--", StringComparison.Ordinal) && !flags.ContainsValue(a)).ToList();
        await using var services = BuildServices(config);
        try
        {
            var command = args.Length > 1 ? args[1] : string.Empty;
            return (args[0], command) switch
            {
                ("apikey", "create") => await ApiKeyCreate(services, Required(positional, 0, "NAME"), ct),
                ("apikey", "list") => await ApiKeyList(services, ct),
                ("apikey", "delete") => await ApiKeyDelete(services, Required(positional, 0, "NAME"), ct),
                ("app-password", "issue") => await Issue(services, flags, ct),
                ("app-password", "list") => await List(services, Flag(flags, "user"), ct),
                ("app-password", "renew") => await Renew(services, flags, ct),
                ("app-password", "revoke") => await Revoke(services, Flag(flags, "user"), Flag(flags, "id"), ct),
                ("app-password", "revoke-all") => Print($"revoked {await services.GetRequiredService<AppPasswordService>().RevokeAllAsync(Flag(flags, "user"), ct)} app password(s)"),
                ("app-password", "allow-networks") => await AllowNetworks(services, flags, ct),
                ("app-password", "allow-countries") => await AllowCountries(services, flags, ct),
                ("app-password", "approve-network") => await ApproveNetwork(services, flags, ct),
                ("user", "new-network-approval") => await NewNetworkApproval(services, Required(positional, 0, "USER"), Required(positional, 1, "on|off|default"), ct),
                ("user", "disable") => await SetDisabled(services, Required(positional, 0, "USER"), true, ct),
                ("user", "enable") => await SetDisabled(services, Required(positional, 0, "USER"), false, ct),
                ("user", "create") => await UserCreate(services, Required(positional, 0, "USER"), false, ct),
                ("user", "create-admin") => await UserCreate(services, Required(positional, 0, "USER"), true, ct),
                ("user", "enrollment-link") => await EnrollmentLink(services, Required(positional, 0, "USER"), ct),
                _ => Fail($"unknown command '{string.Join(' ', args.Take(2))}'.\n{Usage}", 2),
            };
        }
        catch (UsageException ex)
        {
            return Fail($"{ex.Message}\n{Usage}", 2);
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
            return Fail(string.Join(Environment.NewLine, ex.Failures), 3);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or RedisException or TimeoutException)
        {
            return Fail($"cannot reach the credential store at {config["Redis:Configuration"]}: {ex.Message}. Is `broker` running (embedded mode), or is Redis:Configuration right?", 4);
        }
    }

    private static ServiceProvider BuildServices(IConfiguration config)
    {
        var options = config.GetSection(BrokerHostOptions.SectionName).Get<BrokerHostOptions>() ?? new BrokerHostOptions();
        // A person is waiting, not a mail server: allow a cold connection more time than a login gets.
        var overrides = new Dictionary<string, string?> { ["Redis:OperationTimeout"] = config["Redis:OperationTimeout"] ?? "00:00:10" };
        if (string.IsNullOrWhiteSpace(config["Redis:Configuration"]))
        {
            // The running embedded host owns Garnet; reach it on loopback and reuse its pepper file.
            overrides["Redis:Configuration"] = $"127.0.0.1:{options.EmbeddedRedisPort}";
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
        services.AddLogging(l => l.AddConfiguration(merged.GetSection("Logging")).AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        services.AddBrokerCore();
        // Revocations from the command line end open IMAP sessions like the portal's do.
        services.AddBrokerDoveadmKick();
        // Portal accounts (user create) use the same database settings as the portal role.
        services.AddBrokerPortal();
        return services.BuildServiceProvider();
    }

    private static async Task<int> ApiKeyCreate(IServiceProvider sp, string name, CancellationToken ct)
    {
        var key = await sp.GetRequiredService<CallerKeyStore>().CreateAsync(name, ct);
        Console.WriteLine($"caller: {name}");
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
            Flag(flags, "user"), Flag(flags, "name"), Flag(flags, "scopes").Split(','), OptionalLifetime(flags), ct);
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
        Console.WriteLine("id\tname\tscopes\tcreated\texpires\tstatus\tlast used");
        foreach (var ap in await sp.GetRequiredService<AppPasswordService>().ListAsync(user, ct))
        {
            var status = ap.Revoked is not null ? "revoked" : ap.Expires <= DateTimeOffset.UtcNow ? "expired" : "active";
            var last = ap.LastUsed is { } lu ? $"{lu.At:u} {lu.RemoteIp} {lu.Protocol} {lu.ClientId}" : "never";
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
                Console.WriteLine($"\tclients: {string.Join(" | ", ap.Clients)}");
            }
        }

        return 0;
    }

    private static async Task<int> Renew(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        var ap = await sp.GetRequiredService<AppPasswordService>().RenewAsync(Flag(flags, "user"), Flag(flags, "id"), OptionalLifetime(flags), ct);
        return Print($"renewed {ap.Id} until {ap.Expires:u}");
    }

    private static async Task<int> ApproveNetwork(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        var (user, id, network) = (Flag(flags, "user"), Flag(flags, "id"), Flag(flags, "network"));
        return await sp.GetRequiredService<AppPasswordService>().ApproveNetworkAsync(user, id, network, ct) switch
        {
            NetworkApproval.Approved => Print($"approved {network} for {id}"),
            NetworkApproval.UserDisabled => Fail($"{user} is disabled: nothing was approved", 1),
            _ => Fail($"nothing pending for {network} on {id}", 1),
        };
    }

    private static async Task<int> Revoke(IServiceProvider sp, string user, string id, CancellationToken ct) =>
        await sp.GetRequiredService<AppPasswordService>().RevokeAsync(user, id, ct)
            ? Print($"revoked {id}")
            : Fail($"{user} has no app password with id {id}", 1);

    private static async Task<int> SetDisabled(IServiceProvider sp, string user, bool disabled, CancellationToken ct)
    {
        await sp.GetRequiredService<AppPasswordService>().SetDisabledAsync(user, disabled, ct);
        // The portal account too, so a disabled person cannot sign in and mint new app passwords.
        var portal = await Broker.Portal.Accounts.PortalCommands.SetPortalDisabledAsync(sp, user, disabled, ct);
        return Print((disabled ? $"disabled {user} for mail login and revoked their app passwords" : $"enabled {user}")
            + (portal ? " (portal account too)" : " (no portal account)"));
    }

    private static async Task<int> UserCreate(IServiceProvider sp, string user, bool admin, CancellationToken ct)
    {
        var (name, link, expires) = await Broker.Portal.Accounts.PortalCommands.CreateUserAsync(sp, user, admin, ct);
        Console.WriteLine($"created {(admin ? "administrator" : "user")} {name}");
        Console.WriteLine($"one-time enrollment link (valid until {expires:u}): {link}");
        return 0;
    }

    private static async Task<int> EnrollmentLink(IServiceProvider sp, string user, CancellationToken ct) =>
        await Broker.Portal.Accounts.PortalCommands.NewEnrollmentLinkAsync(sp, user, ct) is { } link
            ? Print($"one-time enrollment link: {link}")
            : Fail($"no portal account named '{user}'", 1);

    private static async Task<int> AllowNetworks(IServiceProvider sp, Dictionary<string, string> flags, CancellationToken ct)
    {
        // Required, like the countries' flag: a forgotten (or mistyped) --networks must not silently lift a limit.
        if (!flags.TryGetValue("networks", out var n))
        {
            throw new UsageException("--networks is required (--networks= to remove the limit).");
        }

        var networks = n.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ap = await sp.GetRequiredService<AppPasswordService>().SetAllowedNetworksAsync(Flag(flags, "user"), Flag(flags, "id"), networks, ct);
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
        var ap = await sp.GetRequiredService<AppPasswordService>().SetAllowedCountriesAsync(Flag(flags, "user"), Flag(flags, "id"), countries, ct);
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

    internal static TimeSpan ParseLifetime(string value)
    {
        var v = value.Trim();
        if (v.Length >= 2 && long.TryParse(v[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < 100_000)
        {
            switch (v[^1])
            {
                case 'm': return TimeSpan.FromMinutes(n);
                case 'h': return TimeSpan.FromHours(n);
                case 'd': return TimeSpan.FromDays(n);
            }
        }

        return TimeSpan.TryParse(v, CultureInfo.InvariantCulture, out var t) && t > TimeSpan.Zero
            ? t
            : throw new UsageException($"'{value}' is not a lifetime (use 90m, 12h, 30d).");
    }

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

    internal static Dictionary<string, string> ParseFlags(IEnumerable<string> tokens)
    {
        var flags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        using var e = tokens.GetEnumerator();
        while (e.MoveNext())
        {
            var token = e.Current;
            // --Section:Key=value settings belong to configuration, not to the command.
            if (!token.StartsWith("--", StringComparison.Ordinal) || IsSetting(token))
            {
                continue;
            }

            var name = token[2..];
            var eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                flags[name[..eq]] = name[(eq + 1)..];
            }
            else if (e.MoveNext())
            {
                flags[name] = e.Current;
            }
            else
            {
                throw new UsageException($"--{name} needs a value.");
            }
        }

        return flags;
    }

    private static string Flag(Dictionary<string, string> flags, string name) =>
        flags.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v : throw new UsageException($"--{name} is required.");

    private static string Required(List<string> positional, int index, string what) =>
        positional.Count > index ? positional[index] : throw new UsageException($"{what} is required.");

    private static int Print(string message)
    {
        Console.WriteLine(message);
        return 0;
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"error: {message}");
        return code;
    }

    private sealed class UsageException(string message) : Exception(message);
}
