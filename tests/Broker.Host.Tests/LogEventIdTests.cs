using System.Reflection;
using Microsoft.Extensions.Logging;

namespace Broker.Host.Tests;

/// <summary>
/// Log event ids are what operators alert on and what the docs name ("event 1302"), so each must
/// mean one thing across every Broker assembly: 1xxx core, 2xxx validation, 3xxx portal, 4xxx the
/// mail-server integrations (doveadm, Dovecot policy, nginx), 5xxx gateway.
/// </summary>
public sealed class LogEventIdTests
{
    [Fact]
    public void EveryLoggerMessageEventId_IsUsedOnce_AcrossAllBrokerAssemblies()
    {
        var assemblies = BrokerAssemblies();
        Assert.Superset(
            new HashSet<string> { "broker", "Broker.Core", "Broker.Validation", "Broker.Gateway", "Broker.Portal" },
            assemblies.Select(a => a.GetName().Name!).ToHashSet());

        var messages = (
            from assembly in assemblies
            from type in assembly.GetTypes()
            from method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            let attribute = method.GetCustomAttribute<LoggerMessageAttribute>()
            where attribute is not null
            select (attribute.EventId, Where: $"{assembly.GetName().Name}: {type.FullName}.{method.Name}")).ToList();

        Assert.True(messages.Count > 50, $"only {messages.Count} [LoggerMessage] methods found");
        Assert.DoesNotContain(messages, m => m.EventId <= 0);
        var duplicates = messages.GroupBy(m => m.EventId).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Where))}").ToList();
        Assert.Empty(duplicates);
    }

    /// <summary>The host (assembly <c>broker</c>) and every Broker assembly it references, directly or not.</summary>
    private static List<Assembly> BrokerAssemblies()
    {
        var found = new Dictionary<string, Assembly>(StringComparer.Ordinal);
        var pending = new Stack<AssemblyName>([new AssemblyName("broker")]);
        while (pending.TryPop(out var name))
        {
            if (found.ContainsKey(name.Name!))
            {
                continue;
            }

            var assembly = Assembly.Load(name);
            found[name.Name!] = assembly;
            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (reference.Name!.StartsWith("Broker.", StringComparison.Ordinal))
                {
                    pending.Push(reference);
                }
            }
        }

        return [.. found.Values];
    }
}
