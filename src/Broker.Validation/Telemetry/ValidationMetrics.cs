using System.Diagnostics.Metrics;
using Broker.Core.AppPasswords;

namespace Broker.Validation.Telemetry;

/// <summary>Counters and latency of validations, exported at <c>/metrics</c> in Prometheus format.</summary>
public sealed class ValidationMetrics : IDisposable
{
    public const string MeterName = "Broker.Validation";

    private readonly Meter _meter;
    private readonly Counter<long> _validations;
    private readonly Histogram<double> _duration;

    public ValidationMetrics(IMeterFactory factory)
    {
        _meter = factory.Create(MeterName);
        _validations = _meter.CreateCounter<long>("broker.validations", "{validation}", "Validations by result and deny reason.");
        _duration = _meter.CreateHistogram<double>("broker.validation.duration", "s", "Broker time per validation, from request parsed to answer chosen.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1] });
    }

    public void Record(string endpoint, ValidationResult result, DenyReason? reason, TimeSpan elapsed)
    {
        var resultTag = new KeyValuePair<string, object?>("result", result switch
        {
            ValidationResult.Allowed => "allow",
            ValidationResult.Denied => "deny",
            ValidationResult.ApprovalRequired => "pending",
            _ => "tempfail",
        });
        var reasonTag = new KeyValuePair<string, object?>("reason", reason?.ToString().ToLowerInvariant() ?? "none");
        var endpointTag = new KeyValuePair<string, object?>("endpoint", endpoint);
        _validations.Add(1, resultTag, reasonTag, endpointTag);
        _duration.Record(elapsed.TotalSeconds, resultTag, endpointTag);
    }

    public void Dispose() => _meter.Dispose();
}
