using Broker.Host.Cli;
using Broker.Host.Roles;

// Configuration for both the server and the CLI: appsettings, BROKER_-less environment
// variables (Redis__Configuration, Broker__Roles, …) and --Section:Key=value arguments.

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

return await BrokerHost.RunAsync(args.Where(a => a != "serve").ToArray(), config, cts.Token);
