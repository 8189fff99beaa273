// The JVM application of tests/e2e/70-apps.bats: THREADS threads keep
// rewriting and checking MIB MiB of its heap (long[] blocks of 256 KiB, not
// G1's humongous objects, whose
// contents follow from their index and generation), a ticker appends
// "N WALL_MS" to LOG every 20 ms, and when the file LOG.verify appears the
// whole heap is checked and "VERIFY PASS N" (or "VERIFY FAIL ...") is
// written.  Any mismatch seen by a worker is written as "FAIL ...".
//
//   java -Xms1g -Xmx1g HeapCheck LOG MIB THREADS
import java.io.File;
import java.io.FileWriter;
import java.io.IOException;
import java.util.concurrent.ThreadLocalRandom;

public class HeapCheck {
	static final int WORDS = 1 << 15; // 256 KiB of longs
	static final int PER_MIB = 4;
	static long[][] blocks;
	static long[] gens;
	static FileWriter log;

	static long word(int b, long g, int i) {
		long x = (b * 0x9E3779B97F4A7C15L) ^ (g * 0xC2B2AE3D27D4EB4FL) ^ i;
		x ^= x >>> 31;
		return x * 0xBF58476D1CE4E5B9L;
	}

	static synchronized void say(String s) {
		try {
			log.write(s + "\n");
			log.flush();
		} catch (IOException e) {
			System.exit(3);
		}
	}

	// check block b against its generation; rewrite it with the next if asked
	static boolean check(int b, boolean rewrite) {
		long[] a = blocks[b];
		synchronized (a) {
			long g = gens[b];
			for (int i = 0; i < WORDS; i++) {
				if (a[i] != word(b, g, i)) {
					say("FAIL block " + b + " generation " + g + " word " + i);
					return false;
				}
			}
			if (rewrite) {
				g++;
				for (int i = 0; i < WORDS; i++)
					a[i] = word(b, g, i);
				gens[b] = g;
			}
		}
		return true;
	}

	public static void main(String[] args) throws Exception {
		String path = args[0];
		int mib = Integer.parseInt(args[1]), threads = Integer.parseInt(args[2]);
		log = new FileWriter(path, true);
		int nb = mib * PER_MIB;
		blocks = new long[nb][];
		gens = new long[nb];
		for (int b = 0; b < nb; b++) {
			blocks[b] = new long[WORDS];
			for (int i = 0; i < WORDS; i++)
				blocks[b][i] = word(b, 0, i);
		}
		say("READY");
		for (int t = 0; t < threads; t++) {
			Thread w = new Thread(() -> {
				while (true) {
					if (!check(ThreadLocalRandom.current().nextInt(nb), true))
						return;
					try {
						Thread.sleep(2);
					} catch (InterruptedException e) {
						return;
					}
				}
			});
			w.setDaemon(true);
			w.start();
		}
		File trigger = new File(path + ".verify");
		for (long n = 1;; n++) {
			say(n + " " + System.currentTimeMillis());
			if (trigger.exists()) {
				trigger.delete();
				boolean ok = true;
				for (int b = 0; b < nb && ok; b++)
					ok = check(b, false);
				say(ok ? "VERIFY PASS " + mib : "VERIFY FAIL");
			}
			Thread.sleep(20);
		}
	}
}
