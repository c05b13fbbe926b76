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
// Pipeline: issue (counters, buffer, memory read) -> accumulate -> threshold ->
// output register. One global enable stalls all stages while the output register
// is full and not taken; AXI-Stream allows TREADY to follow TREADY combinationally.
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
    parameter     RAM_STYLE_THRESH = "distributed"
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

    // ---- stage 1: per-PE dot product of one beat, accumulate -----------------------
    logic signed [ACC_BITS-1:0] acc      [PE];
    logic signed [ACC_BITS-1:0] acc_next [PE];
    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic signed [ACC_BITS-1:0] dot;
            logic [SIMD-1:0]            match;
            // XNOR as a SIMD-wide vector first: inside a size cast the operands would be
            // widened before the XNOR, turning its leading zeros into ones.
            match = ~(x1[SIMD-1:0] ^ wq[p*SIMD*W_BITS +: SIMD]);
            dot = '0;
            for (int s = 0; s < SIMD; s++) begin
                if (XNOR) begin
                    dot = dot + ACC_BITS'(match[s]);
                end else begin
                    logic signed [ACC_BITS-1:0] xv, wv;
                    xv = IN_SIGNED ? ACC_BITS'($signed(x1[s*IN_BITS +: IN_BITS]))
                                   : ACC_BITS'($unsigned(x1[s*IN_BITS +: IN_BITS]));
                    if (W_BITS == 1) begin
                        dot = wq[p*SIMD + s] ? dot + xv : dot - xv;
                    end else begin
                        wv = ACC_BITS'($signed(wq[(p*SIMD + s)*W_BITS +: W_BITS]));
                        dot = dot + xv * wv;
                    end
                end
            end
            acc_next[p] = (first1 ? '0 : acc[p]) + dot;
        end
    end

    logic                       v2;
    logic signed [ACC_BITS-1:0] acc2 [PE];
    always_ff @(posedge clk) begin
        if (!rst_n) v2 <= 1'b0;
        else if (en) v2 <= v1 && last1;
        if (en && v1) for (int p = 0; p < PE; p++) acc[p] <= acc_next[p];
        if (en && v1 && last1) begin
            for (int p = 0; p < PE; p++) acc2[p] <= acc_next[p];
        end
    end

    // ---- stage 2: thresholds (read with the fold index of the finished vector) ------
    logic [PE*OUT_BITS-1:0] y2;
    if (N_THRES > 0) begin : g_thresh
        logic [PE*N_THRES*ACC_BITS-1:0] tq;
        bnn_rom #(.WIDTH(PE*N_THRES*ACC_BITS), .DEPTH(NF), .INIT_FILE(THRESH_FILE),
                  .RAM_STYLE(RAM_STYLE_THRESH))
            u_trom (.clk(clk), .en(en), .addr(nf1), .q(tq));
        always_comb begin
            for (int p = 0; p < PE; p++) begin
                logic [CNTW-1:0] cnt;
                cnt = '0;
                for (int i = 0; i < N_THRES; i++)
                    if (acc2[p] >= $signed(tq[(p*N_THRES + i)*ACC_BITS +: ACC_BITS])) cnt = cnt + 1'b1;
                y2[p*OUT_BITS +: OUT_BITS] = OUT_BITS'($signed({1'b0, cnt}) + OUT_BIAS);
            end
        end
    end else begin : g_noact
        always_comb
            for (int p = 0; p < PE; p++) y2[p*OUT_BITS +: OUT_BITS] = OUT_BITS'(acc2[p]);
    end

    // ---- stage 3: output register ----------------------------------------------------
    always_ff @(posedge clk) begin
        if (!rst_n) out_tvalid <= 1'b0;
        else if (en) out_tvalid <= v2;
        if (en && v2) out_tdata <= y2;
    end
endmodule
