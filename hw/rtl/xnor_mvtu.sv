// Binary-weight matrix-vector-threshold unit (FINN MVAU stream format).
//
// y[r] = thresholds_r( sum_c x[c] (*) w[r][c] ), r < MH, c < MW, where (*) is
//   XNOR = 1: x and w are bits (bit 1 = +1, bit 0 = -1) and the sum is the popcount
//             of XNOR(x, w), exactly FINN's binaryXnorMode;
//   XNOR = 0: x is an IN_BITS integer (IN_SIGNED) and w = +1 (bit 1) or -1 (bit 0)
//             with W_BITS = 1, e.g. the first layer of a BNN taking 8-bit pixels, or a
//             signed W_BITS-bit integer with W_BITS > 1 (k-bit layers of hybrid networks).
// Folding as in FINN: PE rows and SIMD columns per cycle. Output row r = nf*PE + pe
// lives in PE pe at fold nf; column c = sf*SIMD + s is SIMD lane s of beat sf.
// A vector is SF = MW/SIMD input beats (lane s at bits [s*IN_BITS +: IN_BITS]);
// it is consumed once, kept in a buffer and replayed for the other NF-1 row folds.
// The result is NF = MH/PE output beats (PE pe at bits [pe*OUT_BITS +: OUT_BITS]),
// one every SF cycles, so a vector takes exactly NF*SF cycles at full throughput.
//
// Activation: with N_THRES > 0 the output is OUT_BIAS + #{i : acc >= T[r][i]}
// (FINN's MultiThreshold; bipolar outputs are encoded as bit 1 = +1 and use
// OUT_BIAS 0). With N_THRES = 0 (noActivation) the output is the accumulator.
//
// Memories ($readmemh): WEIGHT_FILE has NF*SF words of PE*SIMD*W_BITS bits, word
// nf*SF+sf, weight of PE pe and lane s at bits [(pe*SIMD+s)*W_BITS +: W_BITS]. THRESH_FILE has NF words of PE*N_THRES*ACC_BITS bits, threshold i
// of PE pe at bits [(pe*N_THRES+i)*ACC_BITS +: ACC_BITS], two's complement.
//
// Pipeline: issue (counters, buffer, memory read) -> products and adder tree (PIPE
// registers inside) -> accumulate -> threshold compare (THRESH_PIPE register) and count
// -> output register. The registers only add latency: one global enable stalls all
// stages while the output register is full and not taken, so a vector still takes
// NF*SF cycles; AXI-Stream allows TREADY to follow TREADY combinationally.
module xnor_mvtu #(
    parameter int MW        = 64,
    parameter int MH        = 16,
    parameter int PE        = 4,
    parameter int SIMD      = 8,
    parameter bit XNOR      = 1,
    parameter int IN_BITS   = 1,
    parameter bit IN_SIGNED = 0,
    parameter int W_BITS    = 1,
    parameter int ACC_BITS  = 16,
    parameter int N_THRES   = 1,
    parameter int OUT_BITS  = 1,
    parameter int OUT_BIAS  = 0,
    parameter     WEIGHT_FILE = "weights.dat",
    parameter     THRESH_FILE = "thresholds.dat",
    parameter     RAM_STYLE   = "auto",
    parameter     RAM_STYLE_THRESH = "distributed",
    // Pipeline registers (from the generator): behind adder tree level k for PIPE bit k
    // (see stage 1), and between the threshold comparisons and their count.
    parameter logic [31:0] PIPE = 0,
    parameter bit          THRESH_PIPE = 0,
    // k-bit products as shift-and-add in LUTs (FINN's resType "lut"); otherwise a multiply,
    // which Yosys and Vivado put in DSP slices from some width on.
    parameter bit          LUT_PRODUCTS = 0
) (
    input  logic                      clk,
    input  logic                      rst_n,
    input  logic [SIMD*IN_BITS-1:0]   in_tdata,
    input  logic                      in_tvalid,
    output logic                      in_tready,
    output logic [PE*OUT_BITS-1:0]    out_tdata,
    output logic                      out_tvalid,
    input  logic                      out_tready
);
    localparam int SF   = MW / SIMD;
    localparam int NF   = MH / PE;
    localparam int WMEM = SF * NF;
    localparam int SFW  = $clog2(SF > 1 ? SF : 2);
    localparam int NFW  = $clog2(NF > 1 ? NF : 2);
    localparam int WAW  = $clog2(WMEM > 1 ? WMEM : 2);
    localparam int XW   = SIMD * IN_BITS;
    localparam int CNTW = $clog2(N_THRES + 1) + 1;
    localparam int TL   = SIMD > 1 ? $clog2(SIMD) : 0;  // adder tree levels
    // Two's complement bits of one product: a 0/1 match, +-x, or x times a signed weight.
    localparam int PW   = XNOR ? 2 : (W_BITS == 1 ? IN_BITS + 1 : IN_BITS + W_BITS);

    initial begin
        if (MW % SIMD != 0 || MH % PE != 0) $fatal(1, "xnor_mvtu: SIMD must divide MW and PE must divide MH");
        if (XNOR && (IN_BITS != 1 || W_BITS != 1)) $fatal(1, "xnor_mvtu: XNOR mode takes 1-bit inputs and weights");
    end

    logic en;  // the whole pipeline advances together
    assign en = !out_tvalid || out_tready;

    // ---- stage 0: fold counters, input buffer, weight read -------------------------
    logic [SFW-1:0] sf;
    logic [NFW-1:0] nf;
    logic [WAW-1:0] waddr;
    logic [XW-1:0]  ibuf [SF];
    logic [XW-1:0]  x0;
    logic           fire0;

    // Only the first row fold reads the stream; the others replay the buffer.
    assign in_tready = en && (nf == 0);
    assign fire0     = en && (nf != 0 || in_tvalid);
    assign x0        = (nf == 0) ? in_tdata : ibuf[sf];

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            sf <= '0; nf <= '0; waddr <= '0;
        end else if (fire0) begin
            waddr <= (waddr == WAW'(WMEM - 1)) ? '0 : waddr + 1'b1;
            if (sf == SFW'(SF - 1)) begin
                sf <= '0;
                nf <= (nf == NFW'(NF - 1)) ? '0 : nf + 1'b1;
            end else begin
                sf <= sf + 1'b1;
            end
        end
    end
    always_ff @(posedge clk) if (fire0 && nf == 0) ibuf[sf] <= in_tdata;

    logic [PE*SIMD*W_BITS-1:0] wq;
    bnn_rom #(.WIDTH(PE*SIMD*W_BITS), .DEPTH(WMEM), .INIT_FILE(WEIGHT_FILE), .RAM_STYLE(RAM_STYLE))
        u_wrom (.clk(clk), .en(en), .addr(waddr), .q(wq));

    logic           v1, first1, last1;
    logic [NFW-1:0] nf1;
    logic [XW-1:0]  x1;
    always_ff @(posedge clk) begin
        if (!rst_n) v1 <= 1'b0;
        else if (en) v1 <= fire0;
        if (en) begin
            x1 <= x0; nf1 <= nf;
            first1 <= (sf == 0); last1 <= (sf == SFW'(SF - 1));
        end
    end

    // ---- stage 1: per-PE products, an adder tree over the SIMD lanes, accumulate ------
    // A balanced tree, not a chain, so its depth grows with log2(SIMD). Level k of a PE's
    // tree: ceil(SIMD / 2^k) partial sums of PW + k bits (two's complement, held
    // sign-extended to ACC_BITS) from pairs of level k-1's; an odd one out passes through.
    // PIPE bit k registers the sums behind level k (bit 0: the products, bit TL: in front
    // of the accumulator), sum i of PE p in pipe_q[k*LEVEL + p*SIMD + i]; the generator
    // places them from the layer's widths and the clock's depth limit. The fold flags and
    // row fold index travel with the sums, and every register advances with the one
    // global enable, so backpressure stalls them together. One block reduces the tree in
    // place: with a block or a wide vector per level Verilator ran the widest layers 8x slower.
    localparam int LEVEL = PE * SIMD;
    logic signed [ACC_BITS-1:0] pipe_d [(TL+1)*LEVEL];
    logic signed [ACC_BITS-1:0] pipe_q [(TL+1)*LEVEL];
    logic signed [ACC_BITS-1:0] dot    [PE];
    logic [NFW+2:0]             ctl    [TL+2];  // {nf, first, last, valid} in front of level k
    logic [NFW+2:0]             ctl_q  [TL+1];

    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic signed [ACC_BITS-1:0] t [SIMD];
            logic [SIMD-1:0]            match;
            // XNOR as a SIMD-wide vector first: inside a size cast the operands would be
            // widened before the XNOR, turning its leading zeros into ones.
            match = ~(x1[SIMD-1:0] ^ wq[p*SIMD*W_BITS +: SIMD]);
            for (int s = 0; s < SIMD; s++) begin
                logic signed [ACC_BITS-1:0] xv, wv;
                // Operands only where used: Verilator would extract them from the wide
                // words for every lane of an XNOR layer too.
                if (XNOR) begin
                    t[s] = ACC_BITS'(match[s]);
                end else begin
                    xv = IN_SIGNED ? ACC_BITS'($signed(x1[s*IN_BITS +: IN_BITS]))
                                   : ACC_BITS'($unsigned(x1[s*IN_BITS +: IN_BITS]));
                    if (W_BITS == 1) begin
                        t[s] = wq[p*SIMD + s] ? xv : -xv;
                    end else begin
                        wv = ACC_BITS'($signed(wq[(p*SIMD + s)*W_BITS +: W_BITS]));
                        if (LUT_PRODUCTS) begin
                            // One partial product per weight bit, summed as a balanced tree (the
                            // sign bit's subtracted where it joins), each sum wrapped to the
                            // product's PW bits: ceil(log2(W_BITS)) narrow adders deep, where a
                            // chain was W_BITS - 1 adders at the accumulator's width. Adders and
                            // muxes, which no DSP inference picks up. Exact: the product fits PW bits.
                            logic signed [PW-1:0] pp [W_BITS];
                            for (int b = 0; b < W_BITS; b++)
                                pp[b] = wv[b] ? PW'(xv <<< b) : '0;
                            for (int h = 1; h < W_BITS; h = 2 * h)
                                for (int b = 0; b + h < W_BITS; b += 2 * h)
                                    pp[b] = (b + h == W_BITS - 1) ? pp[b] - pp[b + h] : pp[b] + pp[b + h];
                            t[s] = ACC_BITS'(pp[0]);
                        end else begin
                            t[s] = xv * wv;
                        end
                    end
                end
            end
            for (int k = 0; k <= TL; k++) begin
                if (k > 0) begin
                    for (int i = 0; i < ((SIMD + (1 << k) - 1) >> k); i++) begin
                        logic signed [ACC_BITS-1:0] y;
                        y = t[2*i];
                        if (2*i + 1 < ((SIMD + (1 << (k - 1)) - 1) >> (k - 1))) y = y + t[2*i + 1];
                        // Wrapped to the level's width: synthesis then builds PW + k bit adders.
                        t[i] = (PW + k < ACC_BITS) ? (y <<< (ACC_BITS - PW - k)) >>> (ACC_BITS - PW - k) : y;
                    end
                end
                if (PIPE[k]) begin
                    for (int i = 0; i < ((SIMD + (1 << k) - 1) >> k); i++) begin
                        pipe_d[k*LEVEL + p*SIMD + i] = t[i];
                        t[i] = pipe_q[k*LEVEL + p*SIMD + i];
                    end
                end
            end
            dot[p] = t[0];
        end
    end

    assign ctl[0] = {nf1, first1, last1, v1};
    for (genvar k = 0; k <= TL; k++) begin : g_ctl
        if (PIPE[k]) begin : g_reg
            always_ff @(posedge clk) begin
                if (!rst_n) ctl_q[k][0] <= 1'b0;
                else if (en) ctl_q[k][0] <= ctl[k][0];
                if (en) begin
                    ctl_q[k][NFW+2:1] <= ctl[k][NFW+2:1];
                    for (int p = 0; p < PE; p++)
                        for (int i = 0; i < ((SIMD + (1 << k) - 1) >> k); i++)
                            pipe_q[k*LEVEL + p*SIMD + i] <= pipe_d[k*LEVEL + p*SIMD + i];
                end
            end
            assign ctl[k+1] = ctl_q[k];
        end else begin : g_wire
            assign ctl[k+1] = ctl[k];
        end
    end

    logic                       va, firsta, lasta;
    logic [NFW-1:0]             nfa;
    logic signed [ACC_BITS-1:0] acc      [PE];
    logic signed [ACC_BITS-1:0] acc_next [PE];
    assign {nfa, firsta, lasta, va} = ctl[TL+1];
    always_comb
        for (int p = 0; p < PE; p++)
            acc_next[p] = (firsta ? '0 : acc[p]) + dot[p];

    logic                       v2;
    logic signed [ACC_BITS-1:0] acc2 [PE];
    always_ff @(posedge clk) begin
        if (!rst_n) v2 <= 1'b0;
        else if (en) v2 <= va && lasta;
        if (en && va) for (int p = 0; p < PE; p++) acc[p] <= acc_next[p];
        if (en && va && lasta) begin
            for (int p = 0; p < PE; p++) acc2[p] <= acc_next[p];
        end
    end

    // ---- stage 2: thresholds (read with the fold index of the finished vector) ------
    logic [PE*OUT_BITS-1:0] y2;
    logic                   vy;  // y2 is valid
    if (N_THRES > 0) begin : g_thresh
        logic [PE*N_THRES*ACC_BITS-1:0] tq;
        logic [PE*N_THRES-1:0]          ge, geq;
        logic                           vq;
        bnn_rom #(.WIDTH(PE*N_THRES*ACC_BITS), .DEPTH(NF), .INIT_FILE(THRESH_FILE),
                  .RAM_STYLE(RAM_STYLE_THRESH))
            u_trom (.clk(clk), .en(en), .addr(nfa), .q(tq));
        always_comb
            for (int p = 0; p < PE; p++)
                for (int i = 0; i < N_THRES; i++)
                    ge[p*N_THRES + i] = acc2[p] >= $signed(tq[(p*N_THRES + i)*ACC_BITS +: ACC_BITS]);
        if (THRESH_PIPE) begin : g_reg
            always_ff @(posedge clk) begin
                if (!rst_n) vq <= 1'b0;
                else if (en) vq <= v2;
                if (en) geq <= ge;
            end
        end else begin : g_wire
            assign geq = ge;
            assign vq  = v2;
        end
        always_comb begin
            for (int p = 0; p < PE; p++) begin
                logic [CNTW-1:0] cnt;
                cnt = '0;
                for (int i = 0; i < N_THRES; i++) cnt = cnt + CNTW'(geq[p*N_THRES + i]);
                y2[p*OUT_BITS +: OUT_BITS] = OUT_BITS'($signed({1'b0, cnt}) + OUT_BIAS);
            end
        end
        assign vy = vq;
    end else begin : g_noact
        always_comb
            for (int p = 0; p < PE; p++) y2[p*OUT_BITS +: OUT_BITS] = OUT_BITS'(acc2[p]);
        assign vy = v2;
    end

    // ---- stage 3: output register ----------------------------------------------------
    always_ff @(posedge clk) begin
        if (!rst_n) out_tvalid <= 1'b0;
        else if (en) out_tvalid <= vy;
        if (en && vy) out_tdata <= y2;
    end
endmodule
