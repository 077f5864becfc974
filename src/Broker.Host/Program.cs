using Broker.Host.Cli;
using Broker.Host.Roles;

// Configuration for both the server and the CLI: appsettings, BROKER_-less environment
// variables (Redis__Configuration, Broker__Roles, …) and --Section:Key=value arguments.

// A setting needs its value after "=": "--Redis:Configuration host:port" would leave the
// value behind as a stray word, and the setting would silently not apply.
if (args.FirstOrDefault(a => CliCommands.IsSetting(a) && !a.Contains('=', StringComparison.Ordinal)) is { } bare)
{
    await Console.Error.WriteLineAsync($"error: write settings as {bare}=VALUE (with \"=\", not a space).");
    return 2;
}

var config = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(args.Where(CliCommands.IsSetting).ToArray())
    .Build();

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};

// Settings may come before or after the command: `broker --Redis:Configuration=… apikey create dovecot`.
var command = args.Where(a => !CliCommands.IsSetting(a)).ToArray();
if (command.Length > 0 && command[0] != "serve")
{
    return await CliCommands.RunAsync(command, config, cts.Token);
}

// The server takes settings only: a stray word (`broker serve gateway`) would otherwise be ignored
// and every role started.
if (command.Skip(1).FirstOrDefault() is { } extra)
{
    if (CliCommands.IsHelp(extra))
    {
        Console.WriteLine(CliCommands.Usage);
        return 0;
    }

    await Console.Error.WriteLineAsync($"error: serve takes only --Section:Key=value settings, not '{CliCommands.Printable(extra)}' (roles: --Broker:Roles=gateway,validation).");
    return 2;
}

return await BrokerHost.RunAsync(args.Where(a => CliCommands.IsSetting(a)).ToArray(), config, cts.Token);
