using System.ComponentModel.DataAnnotations;
using System.Net;
using Broker.Validation.MailServers;
using Microsoft.Extensions.Options;

namespace Broker.Validation.Nginx;

/// <summary>Where the nginx mail proxy sends a client once Broker has accepted its app password.</summary>
public sealed class NginxAuthOptions
{
    public const string SectionName = "Broker:Nginx";

    /// <summary>
    /// Backend per protocol (<c>imap</c>, <c>pop3</c>, <c>smtp</c>) as <c>ip:port</c>. nginx requires an IP
    /// address in <c>Auth-Server</c>, not a host name. A protocol without a backend is refused.
    /// </summary>
    public Dictionary<string, string> Backends { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// When set, nginx logs in to the backend with this shared secret instead of the user's app
    /// password (<c>Auth-Pass</c>), so the backend only needs to trust the proxy's address and this
    /// secret. Never logged.
    /// </summary>
    public string? BackendPassword { get; set; }

    /// <summary>Seconds nginx waits before answering a failed login (<c>Auth-Wait</c>), to slow guessing.</summary>
    [Range(0, 60)]
    public int FailureWaitSeconds { get; set; } = 2;

    internal bool TryGetBackend(string protocol, out IPEndPoint endpoint)
    {
        endpoint = null!;
        return Backends.TryGetValue(protocol, out var value) && IPEndPoint.TryParse(value, out endpoint!) && endpoint.Port != 0;
    }
}

internal sealed class NginxAuthOptionsValidator : IValidateOptions<NginxAuthOptions>
{
    public ValidateOptionsResult Validate(string? name, NginxAuthOptions o)
    {
        var errors = new List<string>();
        foreach (var (protocol, value) in o.Backends)
        {
            if (protocol is not ("imap" or "pop3" or "smtp"))
            {
                errors.Add($"{NginxAuthOptions.SectionName}:Backends has '{protocol}'; nginx speaks imap, pop3 and smtp.");
            }

            if (!IPEndPoint.TryParse(value, out var ep) || ep.Port == 0)
            {
                errors.Add($"{NginxAuthOptions.SectionName}:Backends:{protocol} is '{value}'; it must be ip:port (nginx needs an IP address, not a host name).");
            }
        }

        if (o.BackendPassword is { } secret && !NginxAuthApi.IsPrintableAscii(secret))
        {
            errors.Add($"{NginxAuthOptions.SectionName}:BackendPassword must be printable ASCII without spaces (it travels in an HTTP header).");
        }
        else if (o.BackendPassword is { } shipped && ShippedPlaceholder.IsIn(shipped))
        {
            // The backend accepts this secret for every mailbox: the placeholder from
            // infra/nginx/backend-dovecot.conf is public.
            errors.Add($"{NginxAuthOptions.SectionName}:BackendPassword is the CHANGE-ME placeholder: generate a secret (openssl rand -hex 32) and put the same one in the backend's configuration.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
