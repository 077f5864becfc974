using Broker.Core.Callers;

namespace Broker.Host.Roles;

/// <summary>What the embedded host does once, on a fresh data directory.</summary>
internal static class FirstRun
{
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

        var key = await store.CreateAsync("local", ct);
        await File.WriteAllTextAsync(marker, DateTimeOffset.UtcNow.ToString("o"), ct);
        Console.WriteLine($"first run: caller API key for local mail servers (shown once): {key}");
        Console.WriteLine("            put it in infra/dovecot's broker.lua config; `broker apikey create NAME` makes more.");
    }
}
