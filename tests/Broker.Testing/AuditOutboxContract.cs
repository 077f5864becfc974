using Broker.Core.Audit;
using Broker.Core.Redis;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using Xunit;

namespace Broker.Testing;

/// <summary>
/// The audit outbox and pump, run against each real server Broker supports: events reach every
/// handler at least once, in order, whatever fails (a handler, the pump's process, its lease).
/// </summary>
public abstract class AuditOutboxContract : IAsyncLifetime
{
    private ConnectionMultiplexer? _muxer;

    /// <summary>A StackExchange.Redis connection string for the server under test.</summary>
    protected abstract string RedisConfiguration { get; }

    private ConnectionMultiplexer Muxer => _muxer ?? throw new InvalidOperationException("Not started.");

    private RedisKeys Keys { get; } = new($"t{Guid.NewGuid():N}"[..10]);

    public async Task InitializeAsync() => _muxer = await ConnectionMultiplexer.ConnectAsync(RedisConfiguration);

    public async Task DisposeAsync()
    {
        if (_muxer is not null)
        {
            await _muxer.DisposeAsync();
        }
    }

    private sealed class RecordingSink : IAuditSink
    {
        public List<IReadOnlyList<AuditEvent>> Batches { get; } = [];

        public IEnumerable<string?> Users => Batches.SelectMany(b => b).Select(e => e.Username);

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

    /// <summary>A handler that hangs in its first call (a database lock, a slow relay) until let go.</summary>
    private sealed class StallingSink(TaskCompletionSource inside, Task resume) : IAuditSink
    {
        public async Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
        {
            if (inside.TrySetResult())
            {
                await resume;
            }
        }
    }

    private AuditOutbox NewOutbox() => new(Muxer, Keys, NullLogger<AuditOutbox>.Instance);

    private static AuditPump NewPump(AuditOutbox outbox, params IAuditSink[] sinks) =>
        new(outbox, sinks, NullLogger<AuditPump>.Instance) { RetryDelay = TimeSpan.Zero, ReclaimInterval = TimeSpan.Zero };

    /// <summary>Enqueues (fire-and-forget) and waits until the server has them.</summary>
    private async Task EnqueueAsync(AuditOutbox outbox, params int[] numbers)
    {
        foreach (var i in numbers)
        {
            outbox.Enqueue(new AuditEvent { At = DateTimeOffset.UtcNow, Kind = AuditKinds.UsedOutsideLimits, Username = $"u{i}" });
        }

        // Same key, same connection: answered after the fire-and-forget pushes.
        await Muxer.GetDatabase().ListLengthAsync(Keys.AuditOutbox);
    }

    /// <summary>Events in every pump's claim: what some handler has not taken yet.</summary>
    private async Task<long> ClaimedAsync()
    {
        var db = Muxer.GetDatabase();
        long total = 0;
        foreach (var pump in await db.SetMembersAsync(Keys.AuditClaims))
        {
            total += await db.ListLengthAsync(Keys.AuditClaim(pump!));
        }

        return total;
    }

    [Fact]
    public async Task Pump_SinkFailing_HoldsItsBatchesAndDeliversThemInOrderOnceItRecovers()
    {
        var outbox = NewOutbox();
        var database = new FlakySink();
        var mail = new RecordingSink();
        var pump = NewPump(outbox, database, mail);

        await EnqueueAsync(outbox, 0, 1, 2);
        Assert.Equal(3, await pump.PumpOnceAsync(CancellationToken.None));
        await EnqueueAsync(outbox, 3, 4);
        Assert.Equal(2, await pump.PumpOnceAsync(CancellationToken.None));

        // The database's outage holds back neither the other handler nor the events.
        Assert.Empty(database.Batches);
        Assert.Equal(["u0", "u1", "u2", "u3", "u4"], mail.Users);
        Assert.Equal(5, pump.Held);
        Assert.Equal(5, await ClaimedAsync());

        database.Failing = false;
        Assert.Equal(0, await pump.PumpOnceAsync(CancellationToken.None));

        Assert.Equal(["u0", "u1", "u2", "u3", "u4"], database.Batches.SelectMany(b => b).Select(e => e.Username));
        Assert.Equal(5, mail.Batches.SelectMany(b => b).Count());
        Assert.Equal(0, pump.Held);
        Assert.Equal(0, await ClaimedAsync());
    }

    [Fact]
    public async Task Pump_StoppingWhileASinkFails_PutsTheEventsBackIntoTheOutboxOldestFirst()
    {
        var outbox = NewOutbox();
        var database = new FlakySink();
        using var pump = NewPump(outbox, database);
        await EnqueueAsync(outbox, 0, 1, 2);

        await pump.StartAsync(CancellationToken.None);
        await database.Failed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await EnqueueAsync(outbox, 3);
        await pump.StopAsync(CancellationToken.None);

        Assert.Equal(["u0", "u1", "u2", "u3"], (await outbox.DequeueAsync(10)).Select(e => e.Username));
        Assert.Equal(0, await ClaimedAsync());
    }

    [Fact]
    public async Task Pump_CrashWhileASinkFails_AnotherPumpPutsTheClaimBackAfterTheLease_NothingIsLost()
    {
        var outbox = NewOutbox();
        // Long enough that the survivor's first poll falls inside it on a loaded machine too: the
        // assertion below relies on the lease still lasting (400 ms failed once, cold, beside the cluster's start).
        var lease = TimeSpan.FromSeconds(1);
        // The crashed portal: it took the events, its database was down, and then it died without stopping.
        var crashed = new AuditPump(outbox, [new FailingSink()], NullLogger<AuditPump>.Instance) { RetryDelay = TimeSpan.Zero, Lease = lease };
        await EnqueueAsync(outbox, 0, 1, 2);
        Assert.Equal(3, await crashed.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(0, await Muxer.GetDatabase().ListLengthAsync(Keys.AuditOutbox));

        var database = new RecordingSink();
        var survivor = NewPump(outbox, database);
        await EnqueueAsync(outbox, 3);

        // While the lease lasts, the claim is the other instance's: only the new event is taken.
        Assert.Equal(1, await survivor.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(["u3"], database.Users);

        await Task.Delay(lease * 2);
        Assert.Equal(3, await survivor.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(["u3", "u0", "u1", "u2"], database.Users);
        Assert.Equal(0, await ClaimedAsync());
        // The dead instance's claim is gone; only the survivor's own (empty) one remains.
        Assert.Single(await Muxer.GetDatabase().SetMembersAsync(Keys.AuditClaims));
    }

    [Fact]
    public async Task Pump_StalledPastItsLease_StartsOverWithoutLosingOrTrimmingAnything()
    {
        var outbox = NewOutbox();
        var lease = TimeSpan.FromMilliseconds(400);
        var stalledDatabase = new FlakySink();
        var stalled = new AuditPump(outbox, [stalledDatabase], NullLogger<AuditPump>.Instance) { RetryDelay = TimeSpan.Zero, Lease = lease };
        await EnqueueAsync(outbox, 0, 1, 2);
        Assert.Equal(3, await stalled.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(3, stalled.Held);

        await Task.Delay(lease * 2);
        var otherDatabase = new RecordingSink();
        var other = NewPump(outbox, otherDatabase);
        Assert.Equal(3, await other.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(["u0", "u1", "u2"], otherDatabase.Users);

        // The stalled instance comes back: its claim is gone, so it drops what it held (delivered
        // by the other) instead of delivering it twice or trimming events it never took, and carries on.
        stalledDatabase.Failing = false;
        await EnqueueAsync(outbox, 3);
        Assert.Equal(1, await stalled.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(0, stalled.Held);
        Assert.Equal(["u3"], stalledDatabase.Batches.SelectMany(b => b).Select(e => e.Username));
        Assert.Equal(0, await ClaimedAsync());
    }

    [Fact]
    public async Task Pump_UnreadableEntries_LeaveTheClaimWithTheirBatch_TheRestIsDelivered()
    {
        var outbox = NewOutbox();
        var database = new FlakySink();
        var pump = NewPump(outbox, database);
        await EnqueueAsync(outbox, 0);
        await Muxer.GetDatabase().ListLeftPushAsync(Keys.AuditOutbox, "not json");
        await EnqueueAsync(outbox, 1);

        // The claim holds three entries for two events: settling must trim all three, no more.
        Assert.Equal(2, await pump.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(2, pump.Held);
        Assert.Equal(3, await ClaimedAsync());

        database.Failing = false;
        await EnqueueAsync(outbox, 2);
        Assert.Equal(1, await pump.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(["u0", "u1", "u2"], database.Batches.SelectMany(b => b).Select(e => e.Username));
        Assert.Equal(0, await ClaimedAsync());
    }

    [Fact]
    public async Task Pump_StalledInsideAHandlerPastItsLease_AnotherPumpDeliversTheBatch_NothingIsLostOrLeftClaimed()
    {
        var outbox = NewOutbox();
        var lease = TimeSpan.FromMilliseconds(400);
        var inside = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stalledDatabase = new StallingSink(inside, resume.Task);
        var stalledMail = new RecordingSink();
        var stalled = new AuditPump(outbox, [stalledDatabase, stalledMail], NullLogger<AuditPump>.Instance) { RetryDelay = TimeSpan.Zero, Lease = lease };
        await EnqueueAsync(outbox, 0, 1, 2);
        var poll = stalled.PumpOnceAsync(CancellationToken.None);
        await inside.Task.WaitAsync(TimeSpan.FromSeconds(10));

        await Task.Delay(lease * 2);
        var database = new RecordingSink();
        var other = NewPump(outbox, database);
        await EnqueueAsync(outbox, 3);
        Assert.Equal(4, await other.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(["u0", "u1", "u2", "u3"], database.Users);

        // The stalled pump finishes the batch it was in (a duplicate), then finds its claim gone.
        resume.SetResult();
        Assert.Equal(3, await poll);
        Assert.Equal(["u0", "u1", "u2"], stalledMail.Users);
        Assert.Equal(0, await stalled.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(0, await ClaimedAsync());
        Assert.Equal(0, await Muxer.GetDatabase().ListLengthAsync(Keys.AuditOutbox));
    }

    /// <summary>Takes its time with every batch, like a mail relay close to its timeout.</summary>
    private sealed class SlowSink(TimeSpan delay) : IAuditSink
    {
        public List<IReadOnlyList<AuditEvent>> Batches { get; } = [];

        public async Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
        {
            await Task.Delay(delay, ct);
            Batches.Add(events);
        }
    }

    [Fact]
    public async Task Pump_SlowHandlersOneAfterAnother_KeepTheLease_NoOtherPumpDeliversTheBatchAgain()
    {
        var outbox = NewOutbox();
        var lease = TimeSpan.FromMilliseconds(900);
        // Together longer than the lease; the lease is renewed between them.
        SlowSink[] slow = [new(TimeSpan.FromMilliseconds(400)), new(TimeSpan.FromMilliseconds(400)), new(TimeSpan.FromMilliseconds(400))];
        var pump = new AuditPump(outbox, slow, NullLogger<AuditPump>.Instance) { RetryDelay = TimeSpan.Zero, Lease = lease };
        await EnqueueAsync(outbox, 0, 1);

        var poll = pump.PumpOnceAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromMilliseconds(1100));
        var other = new RecordingSink();
        Assert.Equal(0, await NewPump(outbox, other).PumpOnceAsync(CancellationToken.None));

        Assert.Equal(2, await poll);
        Assert.Empty(other.Batches);
        Assert.All(slow, s => Assert.Equal(2, s.Batches.SelectMany(b => b).Count()));
        Assert.Equal(0, await ClaimedAsync());
    }

    [Fact]
    public async Task Pump_IdlePolls_WriteNothing()
    {
        var pump = NewPump(NewOutbox(), new RecordingSink());
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(0, await pump.PumpOnceAsync(CancellationToken.None));
        }

        // No claim, no lease, no claims set: an idle portal adds nothing to Redis's append-only file.
        var written = Muxer.GetServers().Where(s => !s.IsReplica).SelectMany(s => s.Keys(pattern: Keys.Prefix + ":*")).ToList();
        Assert.Empty(written);
    }

    [Fact]
    public async Task Claim_WhenTheClaimIsNotWhatThePumpBelieves_TakesNothing()
    {
        var outbox = NewOutbox();
        await EnqueueAsync(outbox, 0, 1);
        var claim = await outbox.ClaimAsync("p1", claimed: 0, max: 1, TimeSpan.FromMinutes(1));
        Assert.Equal(["u0"], claim!.Events.Select(e => e.Username));

        // A pump that lost track (its first claim timed out after Redis ran it) is told so.
        Assert.Null(await outbox.ClaimAsync("p1", claimed: 0, max: 1, TimeSpan.FromMinutes(1)));
        Assert.False(await outbox.SettleAsync("p1", claimed: 0, count: 0, TimeSpan.FromMinutes(1)));
        Assert.Equal(1, await Muxer.GetDatabase().ListLengthAsync(Keys.AuditOutbox));

        Assert.Equal(1, await outbox.ReleaseAsync("p1"));
        Assert.Equal(["u0", "u1"], (await outbox.DequeueAsync(10)).Select(e => e.Username));
    }

    [Fact]
    public async Task Pump_DeliversEveryEventOldestFirst_InBoundedBatches_EvenWhenAnotherSinkFails()
    {
        var outbox = NewOutbox();
        var sink = new RecordingSink();
        var pump = NewPump(outbox, new FailingSink(), sink);
        var start = DateTimeOffset.UtcNow;
        for (var i = 0; i < 1200; i++)
        {
            outbox.Enqueue(new AuditEvent { At = start.AddMilliseconds(i), Kind = AuditKinds.MailLoginDenied, Username = $"u{i}", Detail = "reason WrongPassword" });
        }

        await EnqueueAsync(outbox);
        var taken = 0;
        for (var round = 0; round < 10 && taken < 1200; round++)
        {
            taken += await pump.PumpOnceAsync(CancellationToken.None);
        }

        Assert.Equal(1200, taken);
        Assert.All(sink.Batches, b => Assert.InRange(b.Count, 1, AuditPump.BatchSize));
        Assert.Equal(Enumerable.Range(0, 1200).Select(i => $"u{i}"), sink.Users);
        Assert.Equal(0, await pump.PumpOnceAsync(CancellationToken.None));
        Assert.Equal(1200, await ClaimedAsync());
    }
}
