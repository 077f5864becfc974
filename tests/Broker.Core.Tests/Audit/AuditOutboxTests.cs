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

    /// <summary>A database that is down until <see cref="Failing"/> is cleared.</summary>
    private sealed class FlakySink : IAuditSink
    {
        public bool Failing { get; set; } = true;

        public List<IReadOnlyList<AuditEvent>> Batches { get; } = [];

        public TaskCompletionSource Failed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
        {
            if (Failing)
            {
                Failed.TrySetResult();
                throw new InvalidOperationException("database down");
            }

            Batches.Add(events);
            return Task.CompletedTask;
        }
    }

    private static void Enqueue(AuditOutbox outbox, params int[] numbers)
    {
        foreach (var i in numbers)
        {
            outbox.Enqueue(new AuditEvent { At = DateTimeOffset.UtcNow, Kind = AuditKinds.UsedOutsideLimits, Username = $"u{i}" });
        }
    }

    [Fact]
    public async Task Pump_SinkFailing_HoldsItsBatchesAndDeliversThemInOrderOnceItRecovers()
    {
        using var muxer = await ConnectionMultiplexer.ConnectAsync(redis.Server.Configuration);
        var outbox = new AuditOutbox(muxer, new RedisKeys($"t{Guid.NewGuid():N}"[..10]), NullLogger<AuditOutbox>.Instance);
        var database = new FlakySink();
        var mail = new RecordingSink();
        var pump = new AuditPump(outbox, [database, mail], NullLogger<AuditPump>.Instance) { RetryDelay = TimeSpan.Zero };

        Enqueue(outbox, 0, 1, 2);
        await muxer.GetDatabase().PingAsync();
        Assert.Equal(3, await pump.PumpOnceAsync(CancellationToken.None));
        Enqueue(outbox, 3, 4);
        await muxer.GetDatabase().PingAsync();
        Assert.Equal(2, await pump.PumpOnceAsync(CancellationToken.None));

        // The database's outage holds back neither the other handler nor the events.
        Assert.Empty(database.Batches);
        Assert.Equal(["u0", "u1", "u2", "u3", "u4"], mail.Batches.SelectMany(b => b).Select(e => e.Username));
        Assert.Equal(5, pump.Held);

        database.Failing = false;
        Assert.Equal(0, await pump.PumpOnceAsync(CancellationToken.None));

        Assert.Equal(["u0", "u1", "u2", "u3", "u4"], database.Batches.SelectMany(b => b).Select(e => e.Username));
        Assert.Equal(5, mail.Batches.SelectMany(b => b).Count());
        Assert.Equal(0, pump.Held);
    }

    [Fact]
    public async Task Pump_StoppingWhileASinkFails_PutsTheEventsBackIntoTheOutboxOldestFirst()
    {
        using var muxer = await ConnectionMultiplexer.ConnectAsync(redis.Server.Configuration);
        var outbox = new AuditOutbox(muxer, new RedisKeys($"t{Guid.NewGuid():N}"[..10]), NullLogger<AuditOutbox>.Instance);
        var database = new FlakySink();
        using var pump = new AuditPump(outbox, [database], NullLogger<AuditPump>.Instance);
        Enqueue(outbox, 0, 1, 2);
        await muxer.GetDatabase().PingAsync();

        await pump.StartAsync(CancellationToken.None);
        await database.Failed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Enqueue(outbox, 3);
        await muxer.GetDatabase().PingAsync();
        await pump.StopAsync(CancellationToken.None);

        Assert.Equal(["u0", "u1", "u2", "u3"], (await outbox.DequeueAsync(10)).Select(e => e.Username));
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
