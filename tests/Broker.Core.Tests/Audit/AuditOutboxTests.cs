using Broker.Core.Audit;
using Broker.Core.Redis;
using Broker.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Broker.Core.Tests.Audit;

/// <summary>The audit outbox and pump against a real redis-server.</summary>
public sealed class AuditOutboxTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private sealed class RecordingSink : IAuditSink
    {
        public List<IReadOnlyList<AuditEvent>> Batches { get; } = [];

        public Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
        {
            Batches.Add(events);
            return Task.CompletedTask;
        }
    }

    private sealed class FailingSink : IAuditSink
    {
        public Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct) => throw new InvalidOperationException("database down");
    }

    [Fact]
    public async Task Pump_DeliversEveryEventOldestFirst_InBoundedBatches_EvenWhenAnotherSinkFails()
    {
        using var muxer = await ConnectionMultiplexer.ConnectAsync(redis.Server.Configuration);
        var outbox = new AuditOutbox(muxer, new RedisKeys($"t{Guid.NewGuid():N}"[..10]), NullLogger<AuditOutbox>.Instance);
        var sink = new RecordingSink();
        var pump = new AuditPump(outbox, [new FailingSink(), sink], NullLogger<AuditPump>.Instance);
        var start = DateTimeOffset.UtcNow;
        for (var i = 0; i < 1200; i++)
        {
            outbox.Enqueue(new AuditEvent { At = start.AddMilliseconds(i), Kind = AuditKinds.MailLoginDenied, Username = $"u{i}", Detail = "reason WrongPassword" });
        }

        await muxer.GetDatabase().PingAsync();
        var taken = 0;
        for (var round = 0; round < 10 && taken < 1200; round++)
        {
            taken += await pump.PumpOnceAsync(CancellationToken.None);
        }

        Assert.Equal(1200, taken);
        Assert.All(sink.Batches, b => Assert.InRange(b.Count, 1, AuditPump.BatchSize));
        var all = sink.Batches.SelectMany(b => b).ToList();
        Assert.Equal(Enumerable.Range(0, 1200).Select(i => $"u{i}"), all.Select(e => e.Username));
        Assert.Equal(0, await pump.PumpOnceAsync(CancellationToken.None));
    }
}
