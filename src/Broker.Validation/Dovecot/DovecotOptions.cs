using System.ComponentModel.DataAnnotations;
using Broker.Validation.MailServers;
using Microsoft.Extensions.Options;

namespace Broker.Validation.Dovecot;

/// <summary>How Broker talks back to Dovecot: the doveadm HTTP API used to end sessions on revocation.</summary>
public sealed class DoveadmOptions
{
    public const string SectionName = "Broker:Dovecot:Doveadm";

    /// <summary>
    /// Base URL of Dovecot's doveadm HTTP listener (e.g. <c>http://127.0.0.1:8080</c>); Broker posts to
    /// <c>/doveadm/v1</c> below it. Empty: revocation does not reach open sessions (they end on their own).
    /// </summary>
    public string? Url { get; set; }

    /// <summary>Shortest <see cref="ApiKey"/> accepted: the key grants the whole doveadm API, not only kick.</summary>
    public const int MinimumApiKeyLength = 16;

    /// <summary>
    /// Dovecot's <c>doveadm_api_key</c>. Sent as <c>Authorization: X-Dovecot-API base64(key)</c>; never logged.
    /// At least <see cref="MinimumApiKeyLength"/> characters, never a <c>CHANGE-ME</c> placeholder from infra/.
    /// </summary>
    public string? ApiKey { get; set; }

    /// <summary>Also flush Dovecot's auth cache for the user (only matters when <c>auth_cache_size</c> is not 0).</summary>
    public bool FlushAuthCache { get; set; }

    /// <summary>Bound on one doveadm call; a slow Dovecot must not hold a revocation request.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(3);
}

internal sealed class DoveadmOptionsValidator : IValidateOptions<DoveadmOptions>
{
    public ValidateOptionsResult Validate(string? name, DoveadmOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Url))
        {
            return ValidateOptionsResult.Success;
        }

        var p = DoveadmOptions.SectionName;
        var errors = new List<string>();
        if (!Uri.TryCreate(o.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            errors.Add($"{p}:Url '{o.Url}' is not an http(s) URL.");
        }

        if (string.IsNullOrEmpty(o.ApiKey))
        {
            errors.Add($"{p}:ApiKey is empty: set it to Dovecot's doveadm_api_key, or clear {p}:Url.");
        }
        else if (ShippedPlaceholder.IsIn(o.ApiKey) || o.ApiKey.Length < DoveadmOptions.MinimumApiKeyLength)
        {
            // The doveadm HTTP API key opens every mailbox (fetch, expunge, …), not only kick: a
            // placeholder from infra/ or a short word must not pass for a secret.
            errors.Add($"{p}:ApiKey is a placeholder or shorter than {DoveadmOptions.MinimumApiKeyLength} characters: generate one (openssl rand -hex 32) and give Dovecot the same doveadm_api_key.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// The minimal auth-policy decision (Dovecot <c>auth_policy_server_url</c>): a source address with too
/// many failed logins inside a window is refused before its password is checked.
/// </summary>
public sealed class AuthPolicyOptions
{
    public const string SectionName = "Broker:Dovecot:Policy";

    /// <summary>Failed logins from one source within <see cref="Window"/> after which further attempts are refused.</summary>
    [Range(1, 1_000_000)]
    public int FailureThreshold { get; set; } = 20;

    /// <summary>How long failures are remembered (the counter's TTL, set at the first failure).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>What the mail client shows (IMAP <c>NO [ALERT] …</c>). Printable ASCII only.</summary>
    [Required]
    [RegularExpression("^[\\x20-\\x7E]{1,200}$")]
    public string RejectMessage { get; set; } = "Too many failed logins from your address. Try again later.";
}
