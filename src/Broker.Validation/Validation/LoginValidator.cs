using System.Diagnostics;
using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using Broker.Validation.Telemetry;
using Microsoft.Extensions.Logging;

namespace Broker.Validation.Validation;

/// <summary>One login attempt, whatever protocol the mail server used to ask (JSON API, Dovecot introspection, nginx auth_http).</summary>
public sealed record LoginAttempt(
    string? Username,
    string? Password,
    string? Service,
    string? RemoteIp,
    string? Mech = null,
    string? ClientId = null,
    string? Session = null,
    string? Caller = null);

/// <summary>
/// The single decision point shared by every mail-server-facing endpoint: refuses token
/// mechanisms, asks the credential store, records the metric and the reason (never the
/// secret), and returns allow / deny / unavailable.
/// </summary>
public sealed partial class LoginValidator(AppPasswordService appPasswords, ValidationMetrics metrics, AuditOutbox audit, TimeProvider time, ILogger<LoginValidator> logger)
{
    public async Task<ValidationOutcome> ValidateAsync(LoginAttempt attempt, string endpoint, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        ValidationOutcome outcome;
        if (IsTokenMechanism(attempt.Mech))
        {
            // XOAUTH2/OAUTHBEARER carry a bearer token as the password; Broker issues no tokens yet.
            outcome = ValidationOutcome.Deny(DenyReason.UnsupportedMechanism);
        }
        else
        {
            outcome = await appPasswords.ValidateAsync(attempt.Username, attempt.Password, new ValidationContext(attempt.Service ?? string.Empty, attempt.RemoteIp, attempt.ClientId), ct);
        }

        metrics.Record(endpoint, outcome.Result, outcome.Reason, Stopwatch.GetElapsedTime(started));
        switch (outcome.Result)
        {
            case ValidationResult.Allowed:
                Log.Allowed(logger, outcome.Username!, outcome.CredentialId!, attempt.Service, attempt.RemoteIp, attempt.Caller);
                if (outcome.FirstUseFromNetwork)
                {
                    Log.FirstUseFromNetwork(logger, outcome.Username!, outcome.CredentialId!, attempt.RemoteIp);
                    Audit(AuditKinds.FirstUseFromNetwork, outcome, attempt, $"app password {outcome.CredentialId}, service {attempt.Service}");
                }

                break;
            case ValidationResult.Denied:
                Log.Denied(logger, outcome.Username ?? "(malformed)", outcome.Reason!.Value, attempt.Service, attempt.RemoteIp, attempt.Caller);
                if (outcome.Username is not null)
                {
                    // Only attempts at a well-formed username reach the audit trail; garbage is in the metrics.
                    var kind = outcome.Reason switch
                    {
                        DenyReason.Throttled => AuditKinds.MailLoginThrottled,
                        DenyReason.NetworkNotAllowed or DenyReason.CountryNotAllowed => AuditKinds.UsedOutsideLimits,
                        _ => AuditKinds.MailLoginDenied,
                    };
                    Audit(kind, outcome, attempt,
                        $"reason {outcome.Reason}, service {attempt.Service}{(outcome.CredentialId is null ? string.Empty : $", app password {outcome.CredentialId}")}");
                }

                break;
            case ValidationResult.ApprovalRequired:
                Log.AwaitingApproval(logger, outcome.Username!, outcome.CredentialId!, attempt.RemoteIp);
                if (outcome.FirstUseFromNetwork)
                {
                    Audit(AuditKinds.ApprovalRequested, outcome, attempt, $"app password {outcome.CredentialId}, service {attempt.Service}");
                }

                break;
            default:
                Log.Unavailable(logger, attempt.Service, attempt.RemoteIp, attempt.Caller);
                break;
        }

        return outcome;
    }

    private void Audit(string kind, ValidationOutcome outcome, LoginAttempt attempt, string detail) =>
        audit.Enqueue(new AuditEvent
        {
            At = time.GetUtcNow(),
            Kind = kind,
            Username = outcome.Username,
            Detail = detail,
            RemoteIp = attempt.RemoteIp,
            Client = attempt.ClientId is { Length: > 200 } c ? c[..200] : attempt.ClientId,
            Caller = attempt.Caller,
        });

    internal static bool IsTokenMechanism(string? mech) =>
        mech is not null && (mech.Equals("XOAUTH2", StringComparison.OrdinalIgnoreCase) || mech.Equals("OAUTHBEARER", StringComparison.OrdinalIgnoreCase));

    private static partial class Log
    {
        [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Validation allowed {Username} credential {CredentialId} service {Service} from {RemoteIp} via {Caller}")]
        public static partial void Allowed(ILogger logger, string username, string credentialId, string? service, string? remoteIp, string? caller);

        [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Validation denied {Username}: {Reason}, service {Service} from {RemoteIp} via {Caller}")]
        public static partial void Denied(ILogger logger, string username, DenyReason reason, string? service, string? remoteIp, string? caller);

        [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "First use of app password {CredentialId} of {Username} from a new network ({RemoteIp})")]
        public static partial void FirstUseFromNetwork(ILogger logger, string username, string credentialId, string? remoteIp);

        [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "App password {CredentialId} of {Username} used from {RemoteIp}, a network awaiting the owner's approval: temporary failure")]
        public static partial void AwaitingApproval(ILogger logger, string username, string credentialId, string? remoteIp);

        [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Validation could not decide (store unavailable), service {Service} from {RemoteIp} via {Caller}")]
        public static partial void Unavailable(ILogger logger, string? service, string? remoteIp, string? caller);
    }
}
