using Broker.Host.Cli;
using Broker.Host.Roles;

// Configuration for both the server and the CLI: appsettings, BROKER_-less environment
// variables (Redis__Configuration, Broker__Roles, …) and --Section:Key=value arguments.
var config = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(args.Where(a => a.StartsWith("--", StringComparison.Ordinal) && a.Contains(':', StringComparison.Ordinal)).ToArray())
    .Build();

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};

if (CliCommands.IsCommand(args))
{
    return await CliCommands.RunAsync(args, config, cts.Token);
}

var serverArgs = args.Length > 0 && args[0] == "serve" ? args[1..] : args;
return await BrokerHost.RunAsync(serverArgs, config, cts.Token);
