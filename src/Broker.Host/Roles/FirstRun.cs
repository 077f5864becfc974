using Broker.Core.Callers;
using Broker.Core.Secrets;
using StackExchange.Redis;

namespace Broker.Host.Roles;

/// <summary>What the embedded host does once, on a fresh data directory.</summary>
internal static class FirstRun
{
    private const int Attempts = 5;

    /// <summary>
    /// Creates a caller API key for local mail servers and prints it once, so that a Dovecot on
    /// the same machine can be wired in without another command.
    /// </summary>
    public static async Task EnsureCallerKeyAsync(IEnumerable<IServiceProvider> services, string dataDirectory, CancellationToken ct)
    {
        var marker = Path.Combine(dataDirectory, "first-run.done");
        if (File.Exists(marker))
        {
            return;
        }

        var store = services.Select(s => s.GetService<CallerKeyStore>()).FirstOrDefault(s => s is not null);
        if (store is null)
        {
            return;
        }

        string key;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                key = await store.CreateAsync("local", ct);
                break;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // The store answers within its login-sized timeout; a first start on a busy disk can
                // miss that while Garnet commits its log. Nothing here is urgent: wait and try again,
                // and if the store stays slow, keep running and say how to make the key later.
                if (attempt == Attempts)
                {
                    Console.Error.WriteLine($"first run: could not create the caller API key for local mail servers ({ex.GetType().Name}); run `broker apikey create local` once Broker is up.");
                    return;
                }

                await Task.Delay(TimeSpan.FromSeconds(attempt), ct);
            }
        }

        await File.WriteAllTextAsync(marker, DateTimeOffset.UtcNow.ToString("o"), ct);
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM")))
        {
            // Standard output is the journal here (a systemd unit): it keeps what it is given, and
            // the adm and systemd-journal groups read it. A key that stays valid does not go there.
            var path = Path.Combine(dataDirectory, "first-run-caller-key");
            // Created afresh, so that the owner-only mode applies (a mode is set only on creation).
            File.Delete(path);
            OwnerOnlyFile.Create(path, key + "\n");
            Console.WriteLine($"first run: caller API key for local mail servers written to {path} (readable by this account only);");
            Console.WriteLine("            set it as BROKER_API_KEY in /etc/dovecot/broker.lua (docs/dovecot.md), then delete the file; `broker apikey create NAME` makes more.");
            return;
        }

        Console.WriteLine($"first run: caller API key for local mail servers (shown once): {key}");
        Console.WriteLine("            set it as BROKER_API_KEY in /etc/dovecot/broker.lua (docs/dovecot.md); `broker apikey create NAME` makes more.");
    }
}
